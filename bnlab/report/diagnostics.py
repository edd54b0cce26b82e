"""Diagnostics: checks that may explain a verdict, run on every row of a claim.

A diagnostic is evidence *about* a verdict, never a verdict: a second measure of the same
network pair (the gradient norm's variation around its trend next to its CV, a scale-free
twin next to an ℓ2 measure, a noise-strength sweep next to noisy BN). The diagnostics bnlab
shows were defined after the first full runs, so they are labelled exploratory (post hoc).

Symmetry is the rule: a diagnostic that could explain a failure is computed on every row of
that claim, reproduced or not, and each row says whether its diagnostic points the same way
as its verdict. `check_symmetric` refuses a scorecard where a claim's rows carry different
diagnostics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bnlab.report.stats import Estimate, format_estimate


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic on one row. `effect` is oriented like the claim's effect (treatment
    minus comparison, or their log2 ratio), so `agrees` compares their signs: True if its
    interval lies on the claim's side of zero, False if on the other side, None if it
    includes zero or was not measurable."""

    name: str  # e.g. "trend-free gradient-norm variation"
    effect: Estimate | None
    unit: str = ""  # e.g. " log2"
    detail: str = ""  # what the numbers are, where they are shown
    agrees: bool | None = None
    post_hoc: bool = True  # defined after the first runs: exploratory

    @property
    def text(self) -> str:
        effect = "not measurable"
        if self.effect is not None and self.effect.n:
            effect = format_estimate(self.effect, digits=2, unit=self.unit)
        label = " (post hoc)" if self.post_hoc else ""
        parts = [f"{self.name}{label}: {effect}"]
        if self.detail:
            parts.append(self.detail)
        return "; ".join(parts)


def agreement(effect: Estimate | None, claimed_sign: int) -> bool | None:
    """Whether `effect`'s 95% interval lies on the claimed side of zero (claimed_sign +1 or
    -1): True on that side, False on the other, None if it straddles zero or is missing."""
    if effect is None or not effect.has_ci:
        return None
    if claimed_sign * effect.low > 0 and claimed_sign * effect.high > 0:
        return True
    if claimed_sign * effect.low < 0 and claimed_sign * effect.high < 0:
        return False
    return None


def check_symmetric(rows: Sequence) -> None:
    """Raise ValueError if two measurable rows of one claim carry different diagnostics
    (by name): a diagnostic shown only where a claim failed explains one side only."""
    seen: dict[str, tuple[str, frozenset[str]]] = {}
    for row in rows:
        if row.tests is None:  # not measurable: nothing to diagnose
            continue
        names = frozenset(d.name for d in row.diagnostics)
        first = seen.setdefault(row.claim.id, (row.experiment, names))
        if first[1] != names:
            raise ValueError(
                f"claim {row.claim.id!r}: diagnostics {sorted(first[1])} on {first[0]} but "
                f"{sorted(names)} on {row.experiment}; a diagnostic must run on every row"
            )
