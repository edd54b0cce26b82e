"""Why a Santurkar claim was not reproduced in a setting: reasons computed from that setting's
measurements, each naming where its evidence is shown. A reason is only attached to a
NOT_REPRODUCED row (`bnlab.report.explained`), and its text follows the numbers: where the
evidence does not support an explanation, the reason says so instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bnlab.report import Estimate, ScorecardRow, Verdict, explained, format_estimate, mean_ci
from bnlab.reproduce.common import paired_effect
from bnlab.reproduce.santurkar2018_noise import NoiseSweep

# Each paper measure that counts the gradient's scale (ℓ2), and its scale-free form (ours).
SCALE_FREE_TWIN = {
    "santurkar-gradient-predictiveness": "santurkar-gradient-predictiveness-relative",
    "santurkar-ics-not-reduced": "santurkar-ics-cosine-not-reduced",
}
# β-smoothness divides the gradient change by the distance moved, η ||g||, as the relative
# change divides it by ||g||: the gradient's scale cannot explain a difference between them.
BETA = "santurkar-beta-smoothness"
RELATIVE = "santurkar-gradient-predictiveness-relative"


def scale_reasons(rows: Sequence[ScorecardRow], evidence: Mapping[str, str]) -> list[ScorecardRow]:
    """`rows` (one setting's) with a reason on each not-reproduced ℓ2 row that has its
    scale-free twin among them, and on β-smoothness. `evidence` maps a claim id to the
    setting's further evidence for it (e.g. the gradient-norm ratio), quoted when the scale
    explanation holds."""
    by_id = {row.claim.id: row for row in rows}
    out = []
    for row in rows:
        twin_id = RELATIVE if row.claim.id == BETA else SCALE_FREE_TWIN.get(row.claim.id)
        twin = by_id.get(twin_id)
        if twin is not None:
            why = _beta_why(twin) if row.claim.id == BETA else _scale_why(twin, evidence)
            row = explained(row, why)
        out.append(row)
    return out


def _twin_text(twin: ScorecardRow) -> str:
    return f'"{twin.claim.statement}" ({twin.effect_text})'


def _scale_why(twin: ScorecardRow, evidence: Mapping[str, str]) -> str:
    if twin.verdict is not Verdict.REPRODUCED:
        return (
            f"The scale-free form is not reproduced in this setting either "
            f"({twin.verdict.value}): {_twin_text(twin)}, so the gradient's scale does not "
            "explain it; no tested explanation."
        )
    extra = evidence.get(twin.claim.id, "")
    return (
        f"Most likely BN's change of the gradient's scale, which the ℓ2 measure counts: the "
        f"scale-free form is reproduced in the same setting, {_twin_text(twin)}."
        + (f" {extra}" if extra else "")
    )


def _beta_why(relative: ScorecardRow) -> str:
    said = (
        "β-smoothness divides the gradient change by the distance moved (η ||g||), so BN's "
        "change of the gradient's scale does not explain it"
    )
    if relative.verdict is Verdict.REPRODUCED:
        return (
            f"{said}: the gradient change relative to ||g|| is reproduced in the same setting, "
            f"{_twin_text(relative)}, and the two differ only in which step of the grid counts "
            "(β: the largest change per unit distance; the relative change: the largest "
            "change); no tested explanation."
        )
    return (
        f"{said}; the gradient change relative to ||g|| is not reproduced either "
        f"({relative.verdict.value}): {_twin_text(relative)}; no tested explanation."
    )


def grad_norm_ratio(bn: np.ndarray, base: np.ndarray) -> str:
    """The setting's gradient-scale evidence from per-seed (S,) log2 mean ||g|| over the
    probed steps: 'log2(BN / no BN) of ||g|| = ...' with its interval; '' if not measurable."""
    effect, left_out = paired_effect(bn, base)
    if effect is None:
        return ""
    text = f"log2(BN / no BN) of ||g|| = {format_estimate(effect, 2)}"
    if left_out:  # a diverged seed has no ratio: say so where the interval is narrower
        text += f" ({left_out} of {np.asarray(bn).size} seeds not measurable, left out)"
    return text


def noisy_bn_why(
    like_bn: ScorecardRow,
    train_loss: Mapping[str, np.ndarray],
    noise: Mapping[str, float],
    sweep: NoiseSweep | None = None,
) -> str:
    """Why noisy BN did not train about as well as BN. `train_loss` maps "batch" and
    "batch-noisy" to (S,) final training losses; `noise` is the stored noise parameters
    (`model.norm.batch_noisy`: mean_max, std_min, std_max);
    `sweep` the noise-strength sweep where it was trained.

    Only where noisy BN is worse than BN (else ''). With the sweep, the reason is its test:
    noise strength is the cause if weaker noise narrows the gap to BN (the weakest scale's
    accuracy minus scale 1's, paired by seed, has its interval above 0), and is ruled out
    otherwise. Without it, the untested explanation (noise as strong as BN's unit-variance
    output corrupts each example's signal) where noisy BN also fits the training data worse."""
    worse = like_bn.effect.has_ci and like_bn.effect.high < 0
    if not worse:
        return ""
    if sweep is not None and len(sweep.scales) > 1:
        return _noise_sweep_why(sweep, noise, like_bn.claim.margin or 0.0)
    bn, noisy = (train_loss[n][np.isfinite(train_loss[n])] for n in ("batch", "batch-noisy"))
    if bn.size == 0 or noisy.size == 0 or not noisy.mean() > bn.mean():
        return ""
    loss = (
        f"final training loss BN + noise {format_estimate(mean_ci(noisy), 3)} vs BN "
        f"{format_estimate(mean_ci(bn), 3)}"
    )
    return (
        f"Most likely our noise is stronger than the paper's: {_noise_text(noise)}, are "
        "comparable to BN's unit-variance output, so the noise corrupts each example's signal, "
        "not only the distribution of the layer's input: noisy BN fits the training data worse "
        f"({loss}; this setting's table), and the activation-distribution figures show the "
        "noise. The paper's noise values could not be read; no noise-strength sweep was run, "
        "so this is not tested."
    )


def _noise_text(noise: Mapping[str, float]) -> str:
    return (
        f"its per-channel std, U({noise['std_min']:g}, {noise['std_max']:g}), and "
        f"mean, U(-{noise['mean_max']:g}, {noise['mean_max']:g})"
    )


def _noise_sweep_why(sweep: NoiseSweep, noise: Mapping[str, float], margin: float) -> str:
    """The reason the noise-strength sweep supports (see `noisy_bn_why`); `margin` (pp) is
    the claim's "about as well"."""
    weakest = sweep.scales[0]
    gaps = []
    for scale, acc in zip(sweep.scales, sweep.noisy, strict=True):
        gap, _ = paired_effect(acc, sweep.bn)
        gaps.append(f"{_pp(gap)} at scale {scale:g}")
    closest, _ = paired_effect(sweep.at(weakest), sweep.bn)
    gained, _ = paired_effect(sweep.at(weakest), sweep.at(1.0))
    said = (
        "A noise-strength sweep tests whether our noise is too strong (every noise parameter "
        f"times a scale; scale 1 is the scored setting's, {_noise_text(noise)}): final test "
        f"accuracy BN + noise − BN, paired by seed, is {'; '.join(reversed(gaps))} (this "
        f"setting's noise-sweep table and figure); scale {weakest:g} minus scale 1 is "
        f"{_pp(gained)}."
    )
    if gained is None or not (gained.has_ci and gained.low > 0):
        return (
            f"{said} Weaker noise does not close the gap, so the noise's strength does not "
            "explain it; no tested explanation."
        )
    if closest is not None and closest.has_ci and closest.high >= -margin:
        cause = (
            f"at scale {weakest:g} the gap's interval reaches the claim's ±{margin:g} pp "
            "margin, so the tested cause is our noise's strength"
        )
    else:
        cause = (
            f"a gap to BN remains at scale {weakest:g}, so our noise's strength explains part "
            "of it (tested), not all"
        )
    return (
        f"{said} The gap shrinks as the noise weakens; {cause}: noise as strong as BN's "
        "unit-variance output corrupts each example's signal, not only the distribution of the "
        "layer's input. The paper's noise values could not be read; the claim stays scored at "
        "scale 1, the setting chosen before any run."
    )


def _pp(effect: Estimate | None) -> str:
    return format_estimate(effect, 2, unit=" pp") if effect is not None else "not measurable"
