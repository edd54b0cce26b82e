"""The diagnostics of the Santurkar rows: checks that may explain a verdict, on every row of
their claim, reproduced or not (`bnlab.report.diagnostics`). All were defined after the
first full runs, so they are post hoc.

- The ℓ2 claims (gradient predictiveness, β-smoothness, ICS ℓ2) count the gradient's scale,
  which BN changes. Each of their rows carries its scale-free twin (the gradient change
  divided by ||g||; for ICS, 1 − cos(G, G')) and the gradient-norm ratio log2(BN / no BN)
  over the same steps, which says how much of the row's ℓ2 log ratio the gradient's scale
  accounts for. For the gradient change, log2 ℓ2 = log2 (ℓ2 / ||g||) + log2 ||g|| at every
  step, so twin and scale share the ℓ2 ratio (up to the averaging over steps); for ICS,
  ||G − G'|| ≈ ||G|| sqrt(2 (1 − cos)) when ||G'|| ≈ ||G||, so half the twin's log ratio
  plus the scale's (the whole network's ||g||: per-layer norms are not recorded); β divides
  the scale out by construction.
- Every noisy-BN row carries the noise-strength sweep: the row's effect recomputed with the
  noise scaled down (`santurkar2018_noise`).

`agrees` follows the row's test: the side of zero for a superiority claim, the margin for
"similar or higher" (above −margin) and "similar" (within ±margin).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from bnlab.report import Diagnostic, Estimate, Row, Rule, agreement, format_estimate, mean_ci
from bnlab.report.claims import Direction
from bnlab.report.verdicts import paired_effects

TWIN_GRADIENT = "scale-free twin: gradient change / ||g||"
TWIN_ICS = "scale-free twin: 1 − cos(G, G')"
GRADIENT_SCALE = "gradient-norm ratio"
NOISE_SWEEP = "noise-strength sweep"
SIGN = {Direction.HIGHER: 1, Direction.LOWER: -1}


def agrees(rule: Rule, effect: Estimate | None) -> bool | None:
    """Whether `effect` (on the rule's scale) points the way the rule's claim does: True,
    False, or None when its 95% interval does not decide it (or it is missing)."""
    direction = rule.claim.direction
    if direction in SIGN:
        return agreement(effect, SIGN[direction])
    if effect is None or not effect.has_ci:
        return None
    m = rule.margin
    if direction is Direction.NOT_LOWER:
        return True if effect.low > -m else False if effect.high < -m else None
    if -m < effect.low and effect.high < m:  # SIMILAR
        return True
    return False if effect.low > m or effect.high < -m else None


def log2_ratio(bn: np.ndarray, base: np.ndarray) -> Estimate | None:
    """The paired log2(BN / no BN) over the seeds where both are positive (None if < 2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log2(np.asarray(bn, dtype=float) / np.asarray(base, dtype=float))
    d = d[np.isfinite(d)]
    return mean_ci(d) if d.size >= 2 else None


def twin(rule: Rule, name: str, bn: np.ndarray, base: np.ndarray, what: str) -> Diagnostic:
    """The scale-free twin of an ℓ2 row: per-seed values of BN and no BN (S,) each."""
    effect = log2_ratio(bn, base)
    detail = f"log2(BN / no BN) of {what} over the row's steps"
    return Diagnostic(name, effect, " log2", detail, agrees(rule, effect))


# How an ℓ2 measure holds the gradient's scale ||g||, for `gradient_scale`:
CHANGE = "change"  # ℓ2 = (ℓ2 / ||g||) x ||g|| at every step: the twin has weight 1
ICS = "ics"  # ||G - G'|| ~ ||G|| sqrt(2 (1 - cos)) when ||G'|| ~ ||G||: weight 1/2
BETA = "beta"  # β divides by the distance moved, η ||g||: the scale cancels
WHOLE_GRADIENT = "the whole network's ||g|| at the probed steps (per-layer norms are not recorded)"


def gradient_scale(
    rule: Rule, row: Row, twin_effect: Estimate | None, norm: Estimate | None, kind: str
) -> Diagnostic:
    """log2(BN / no BN) of ||g|| over the row's steps (`norm`), with how much of the row's
    ℓ2 log ratio it accounts for; `kind` says how the row's measure holds ||g||."""
    if kind == BETA:
        detail = (
            "β divides the gradient change by the distance moved, η ||g||, so the gradient's "
            "scale cancels: it accounts for none of β's ratio by construction (β and the "
            "relative change differ in which grid step counts)"
        )
    elif kind == ICS:
        detail = f"{WHOLE_GRADIENT}; {scale_share(row.effect, twin_effect, norm, 0.5)}"
    else:
        detail = scale_share(row.effect, twin_effect, norm, 1.0)
    return Diagnostic(GRADIENT_SCALE, norm, " log2", detail, agrees(rule, norm))


def scale_share(l2: Estimate, twin: Estimate | None, norm: Estimate | None, weight: float) -> str:
    """How much of the ℓ2 log ratio `l2` the gradient-norm ratio `norm` accounts for, beside
    the scale-free twin's part (`weight` x its log ratio); means of per-seed log2 ratios."""
    if norm is None or not l2.n or math.isnan(l2.mean):
        return "not measurable: no ℓ2 ratio or no gradient-norm ratio over every seed"
    x, z = l2.mean, norm.mean
    term = "scale-free" if weight == 1.0 else f"{weight:g} × scale-free"
    parts = f"the ℓ2 log ratio {x:+.2f} ≈ {term} {_mean(twin)} + ||g|| {z:+.2f}"
    if twin is not None:
        parts += f" (sum {weight * twin.mean + z:+.2f})"
    if abs(x) < 1e-9:
        return f"{parts}; the ℓ2 ratio is 0, so there is nothing for the scale to account for"
    share = z / x
    if share < 0:
        said = "none of it: the gradient's scale points the other way"
    elif share < 0.8:
        said = f"only part of it ({share:.0%}): the rest is not the gradient's scale"
    elif share <= 1.25:
        said = f"about all of it ({share:.0%})"
    else:
        said = f"more than all of it ({share:.0%}): the scale-free form points the other way"
    return f"{parts}; the gradient's scale accounts for {z:+.2f} of {x:+.2f} log2 units, {said}"


def _mean(effect: Estimate | None) -> str:
    return "not measurable" if effect is None else f"{effect.mean:+.2f}"


def noise_sweep(
    rule: Rule,
    scales: Sequence[float],
    treatment: Mapping[float, np.ndarray],
    comparison: np.ndarray,
) -> Diagnostic:
    """The row's effect at each noise scale (`treatment`: scale -> BN + noise's per-seed
    values; scale 1 is the row's own); the diagnostic's effect is the weakest noise's."""
    if len(scales) < 2:
        detail = "not measurable: no weaker noise was trained in these results"
        return Diagnostic(NOISE_SWEEP, None, rule.unit, detail, None)
    effects = {s: _effect(rule, treatment[s], comparison) for s in scales}
    said = "; ".join(
        f"{_estimate(effects[s], rule)} at scale {s:g}" for s in sorted(scales, reverse=True)
    )
    weakest = min(scales)
    detail = (
        f"{rule.effect_text}, recomputed with every noise parameter times a scale (1: this "
        "row's noise): "
        f"{said}; the diagnostic's value is scale {weakest:g}'s"
    )
    effect = effects[weakest]
    return Diagnostic(NOISE_SWEEP, effect, rule.unit, detail, agrees(rule, effect))


def _effect(rule: Rule, treatment: np.ndarray, comparison: np.ndarray) -> Estimate | None:
    d = paired_effects(rule, treatment, comparison)
    d = d[np.isfinite(d)]
    return mean_ci(d) if d.size >= 2 else None


def _estimate(effect: Estimate | None, rule: Rule) -> str:
    if effect is None:
        return "not measurable"
    return format_estimate(effect, digits=rule.digits, unit=rule.unit)
