"""A study's claims decided by the lab's rule: the effect per seed, its 95% t interval
(`bnlab.report.stats.diff_ci`, paired by seed), and the verdict of `bnlab.report.claims`.

`decide` is the one place a study's claim meets the judging machinery: it turns the small
`spec.Claim` into the report's `Claim` and scores it. Re-point it when that machinery moves.
"""

from __future__ import annotations

import math

import numpy as np

from bnlab.report import claims as lab
from bnlab.report.stats import Estimate, diff_ci
from bnlab.study.spec import Claim

__all__ = ["SCALES", "decide", "effect"]

_DIRECTIONS = {d.value: d for d in lab.Direction}
# How each metric is shown: (scale, unit, digits). Accuracies as percentage points.
SCALES = {
    "test_accuracy": (100.0, " pp", 2),
    "train_accuracy": (100.0, " pp", 2),
    "test_loss": (1.0, "", 4),
    "train_loss": (1.0, "", 4),
    "grad_norm": (1.0, "", 3),
}


def effect(a: np.ndarray, b: np.ndarray, metric: str) -> tuple[Estimate, int]:
    """`a - b` per seed (both (K,), seed k of each paired), scaled for display, with its
    paired t interval; and how many seeds were left out (a value not finite on either side)."""
    scale = SCALES[metric][0]
    keep = np.isfinite(a) & np.isfinite(b)
    left_out = int((~keep).sum())
    if not keep.any():
        return Estimate(math.nan, math.nan, math.nan, 0, "no finite pair"), left_out
    return diff_ci(a[keep] * scale, b[keep] * scale, paired=True), left_out


def decide(
    claim: Claim,
    estimate: Estimate,
    *,
    registered: str,
    seeds: int,
    left_out: int,
    diverged: tuple[tuple[str, int], ...],
) -> lab.ScorecardRow:
    """The scorecard row of `claim` on its measured effect (see the module docstring)."""
    scale, unit, digits = SCALES[claim.metric]
    what = claim.metric.replace("_", " ")
    rule = lab.Claim(
        id=f"{claim.variant}-vs-{claim.than}-{claim.metric}",
        statement=claim.text,
        source=f"the study's own claim, registered {registered}",
        direction=_DIRECTIONS[claim.direction],
        reference="no external number: the study's own question",
        measure=f"final {what}, {claim.variant} − {claim.than}",
        unit=unit,
        digits=digits,
        margin=None if claim.margin is None else claim.margin * scale,
    )
    return lab.score(
        rule,
        f"{claim.variant} vs {claim.than}",
        estimate,
        seeds=seeds,
        diverged=diverged,
        left_out=left_out,
    )
