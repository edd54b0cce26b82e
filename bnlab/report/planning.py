"""What would decide an inconclusive verdict: seeds for 80% power at the observed effect.

An inconclusive primary row is one whose seeds do not decide it. For each one, the number
of seeds a new, independent run would need so that one of the row's two one-sided tests
(`bnlab.report.verdicts.run_tests`) rejects with 80% power, *if the true effect and per-seed
spread were the observed ones*, at the strictest level Holm can ask of its family (ALPHA / k,
k its primary rows). Power comes from statsmodels' `TTestPower` (the one-sample t-test the
verdicts use); the refuting test of an equivalence claim is two-sided, so it gets ALPHA / 2k.

This is computed after the data, so it is exploratory: it is shown next to every
inconclusive primary row, never changes a verdict, and never explains one. An observed
effect of an undecided row is noisy, so the count is a planning guess (the same rule the
seed policy, `bnlab.reproduce.preregistered`, applies to the pilot), not evidence. An effect
that sits on the boundary of both tests gets no count: no number of seeds decides it there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from statsmodels.stats.power import TTestPower

from bnlab.report.claims import Direction
from bnlab.report.document import table
from bnlab.report.verdicts import ALPHA, Row, Verdict

POWER = 0.8
MAX_SEEDS = 10_000  # beyond this the answer is "no practical number of seeds"


def _distances(row: Row) -> list[tuple[float, float]]:
    """(distance of the observed mean past the test's null boundary, in the direction the
    test rejects; the level multiplier) for the row's two one-sided tests."""
    mean, m = row.effect.mean, row.rule.margin
    direction = row.claim.direction
    if direction is Direction.HIGHER:
        return [(mean, 1.0), (m - mean, 1.0)]
    if direction is Direction.LOWER:
        return [(-mean, 1.0), (mean + m, 1.0)]
    if direction is Direction.SIMILAR:
        return [(m - abs(mean), 1.0), (abs(mean) - m, 0.5)]
    return [(mean + m, 1.0), (-m - mean, 1.0)]  # NOT_LOWER


def seeds_to_decide(row: Row, family_size: int) -> int | None:
    """Seeds for 80% power of the more promising of the row's two tests at the observed
    effect (see the module docstring), or None when no number up to MAX_SEEDS decides it."""
    d = np.asarray(row.effects, dtype=float)
    d = d[np.isfinite(d)]
    sd = float(np.std(d, ddof=1)) if d.size >= 2 else math.nan
    if not sd > 0:
        return None
    best = None
    for distance, level in _distances(row):
        if distance <= 0:
            continue
        alpha = ALPHA * level / max(family_size, 1)
        effect_size = distance / sd
        if _power(effect_size, MAX_SEEDS, alpha) < POWER:
            continue
        n = TTestPower().solve_power(
            effect_size=effect_size, alpha=alpha, power=POWER, alternative="larger"
        )
        n = max(2, math.ceil(float(n) - 1e-9))
        best = n if best is None else min(best, n)
    return best


def _power(effect_size: float, n: int, alpha: float) -> float:
    return float(TTestPower().power(effect_size, n, alpha, alternative="larger"))


def _plans(rows: Sequence[Row]) -> list[tuple[Row, int | None]]:
    """Every inconclusive primary row with `seeds_to_decide` at its family's size."""
    family_size: dict[str, int] = {}
    for row in rows:
        if row.counted and row.tests is not None:
            family_size[row.claim.family] = family_size.get(row.claim.family, 0) + 1
    return [
        (r, seeds_to_decide(r, family_size[r.claim.family]))
        for r in rows
        if r.counted and r.verdict is Verdict.INCONCLUSIVE
    ]


def undecided_table(rows: Sequence[Row], label=lambda r: r.experiment):
    """Every inconclusive primary row with the seeds that would decide it, or None when there
    is none. `label(row)` names the setting (the summary links it to its page)."""
    plans = _plans(rows)
    if not plans:
        return None
    body = [
        (
            row.claim.statement,
            label(row),
            str(row.seeds),
            f"{n:,}"
            if n is not None
            else f"none up to {MAX_SEEDS:,}: the effect sits at a boundary of both tests",
        )
        for row, n in plans
    ]
    columns = ("claim", "setting", "n run", f"seeds for {POWER:.0%} power at the observed effect")
    return table(columns, body, "What would decide the inconclusive verdicts (exploratory)")


def undecided_sentence(rows: Sequence[Row]) -> str:
    """How many inconclusive primary rows more seeds would decide, and how many no number
    of seeds up to MAX_SEEDS would (empty when no row is inconclusive)."""
    plans = _plans(rows)
    if not plans:
        return ""
    by_seeds = [n for _, n in plans if n is not None]
    never = len(plans) - len(by_seeds)
    rows_word = "row" if len(plans) == 1 else "rows"
    verb = "is" if len(by_seeds) == 1 else "are"
    text = (
        f"Of the {len(plans)} inconclusive primary {rows_word}, {len(by_seeds)} {verb} "
        "inconclusive for lack of seeds"
    )
    if by_seeds:
        text += f" (from {min(by_seeds):,} to {max(by_seeds):,} seeds at the observed effect)"
    if never:
        text += (
            f" and {never} would stay inconclusive with any number up to {MAX_SEEDS:,}: "
            "the observed effect sits at a boundary of both tests"
        )
    return text + "."


EXPLAINED = (
    "Exploratory, computed after the data: for every inconclusive primary row, the seeds a "
    "new, independent run would need for one of its two tests to reject with "
    f"{POWER:.0%} power if the true effect and per-seed spread were the observed ones, at "
    "the strictest Holm level of its family (0.025 / k, k its primary rows). Observed effects "
    "of undecided rows are noisy, so these are planning guesses; they change no verdict."
)
