"""The claims scorecard: what the papers and seed projects claim, and a rule that judges each
claim from a measured effect with its confidence interval.

An effect is always "BN minus the comparison" (see each claim's `measure`), one value per
seed, summarized by `stats.diff_ci`. The effect measures themselves live in `measures`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from bnlab.report.stats import Estimate, format_estimate, format_p


class Direction(enum.Enum):
    """What the claim says about the effect (BN minus comparison)."""

    HIGHER = "higher"  # the effect is positive
    LOWER = "lower"  # the effect is negative
    SIMILAR = "similar"  # the effect is within ±margin
    NOT_LOWER = "similar or higher"  # the effect is not below -margin


class Verdict(enum.Enum):
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not reproduced"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Claim:
    """One claim, stated as its source states it, with the number its source gives.

    `margin` is the equivalence margin in the effect's units: effects inside ±margin are too
    small to matter. It is required for SIMILAR claims and optional otherwise.

    `reference` is what the sources say for every setting; `numbers` holds a source's own
    number where it belongs to one setting only, as (experiment, text): the scorecard shows
    it in that experiment's row and nowhere else (`reference_for`).
    """

    id: str
    statement: str
    source: str  # paper or seed, with section
    direction: Direction
    reference: str  # what the sources say for every setting ("shown in a figure; no number")
    measure: str  # what the effect is, with its units
    unit: str = ""  # appended to the number when formatting, e.g. " pp"
    digits: int = 2
    margin: float | None = None
    numbers: tuple[tuple[str, str], ...] = ()  # (experiment, the source's number there)

    def __post_init__(self):
        if self.margin is not None and not self.margin >= 0:
            raise ValueError(f"Claim {self.id}: margin={self.margin!r}, expected >= 0 or None")
        if self.direction is Direction.SIMILAR and self.margin is None:
            raise ValueError(f"Claim {self.id}: direction SIMILAR needs a margin, got None")

    def reference_for(self, experiment: str) -> str:
        """The source's number for `experiment`'s setting, or the claim's general reference
        saying that the sources' numbers belong to other settings."""
        own = [text for where, text in self.numbers if where == experiment]
        if own:
            return "; ".join([*own, self.reference])
        if not self.numbers:
            return self.reference
        others = ", ".join(where for where, _ in self.numbers)
        return f"{self.reference}; no source number for this setting (the seeds' are for {others})"


def judge(claim: Claim, effect: Estimate) -> Verdict:
    """Judge a claim from the confidence interval [lo, hi] of its effect (margin m, 0 if unset).

    - No interval (n = 1, NaN bounds): INCONCLUSIVE, whatever the mean says.
    - HIGHER: REPRODUCED if lo > 0. NOT_REPRODUCED if hi < 0, or if the whole interval lies
      within [-m, m] (an effect too small to matter). Otherwise INCONCLUSIVE.
    - LOWER: the mirror image: REPRODUCED if hi < 0; NOT_REPRODUCED if lo > 0 or within ±m.
    - SIMILAR: REPRODUCED if the interval lies within [-m, m]; NOT_REPRODUCED if it lies
      entirely outside (lo > m or hi < -m); otherwise INCONCLUSIVE.
    - NOT_LOWER: REPRODUCED if lo >= -m; NOT_REPRODUCED if hi < -m; otherwise INCONCLUSIVE.

    Excluding zero in the claimed direction wins over the margin test: a small effect that is
    clearly there still reproduces the claim, and the scorecard shows its size beside it.
    """
    if not effect.has_ci:
        return Verdict.INCONCLUSIVE
    lo, hi = effect.low, effect.high
    m = claim.margin or 0.0
    within = claim.margin is not None and -m <= lo and hi <= m
    d = claim.direction
    if d is Direction.HIGHER:
        return _decide(lo > 0, hi < 0 or within)
    if d is Direction.LOWER:
        return _decide(hi < 0, lo > 0 or within)
    if d is Direction.SIMILAR:
        return _decide(within, lo > m or hi < -m)
    return _decide(lo >= -m, hi < -m)  # NOT_LOWER


def _decide(reproduced: bool, refuted: bool) -> Verdict:
    if reproduced:
        return Verdict.REPRODUCED
    return Verdict.NOT_REPRODUCED if refuted else Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class ScorecardRow:
    """One line of the scorecard: a claim, where it was measured, the effect and the verdict.

    `seeds` is how many seeds were run, `diverged` how many of them diverged per network
    (label, count), and `left_out` how many seeds have no effect value (a measure that is
    not finite for either network, e.g. no landscape after a divergence); the effect's
    interval is over the other seeds.

    `why` is set only on a NOT_REPRODUCED row: the most likely reason, computed from the data
    and naming where its evidence is shown (a table line, a figure, another scorecard row).
    Empty means no tested explanation.
    """

    claim: Claim
    experiment: str
    effect: Estimate
    verdict: Verdict
    note: str = ""  # e.g. how the protocol differs from the source's
    seeds: int = 0
    diverged: tuple[tuple[str, int], ...] = ()
    left_out: int = 0
    why: str = ""

    @property
    def effect_text(self) -> str:
        """'3.20 pp ± 0.41 (95% CI, n=5), p = 0.0021': the p of the effect's t-test, if any."""
        if self.effect.n == 0:
            return "not measurable"
        text = format_estimate(self.effect, digits=self.claim.digits, unit=self.claim.unit)
        return text + format_p(self.effect.p_value)

    @property
    def reference(self) -> str:
        """The source's number for this row's setting (`Claim.reference_for`)."""
        return self.claim.reference_for(self.experiment)

    @property
    def divergence_text(self) -> str:
        """'no BN diverged in 2/5 seeds; 2/5 seeds left out', or '' when every seed counts."""
        parts = [f"{label} diverged in {k}/{self.seeds} seeds" for label, k in self.diverged if k]
        if self.left_out:
            parts.append(f"{self.left_out}/{self.seeds} seeds not measurable, left out")
        return "; ".join(parts)


def score(
    claim: Claim,
    experiment: str,
    effect: Estimate,
    note: str = "",
    *,
    seeds: int = 0,
    diverged: tuple[tuple[str, int], ...] = (),
    left_out: int = 0,
    why: str = "",
) -> ScorecardRow:
    """Judge `claim` on `effect` measured by `experiment` and return its scorecard row.

    The verdict is `judge`'s, except that a row with more than half of its `seeds` left out
    of the interval is INCONCLUSIVE whatever the rest shows (see `RULE`). `why` (the most
    likely reason for a failed claim) is kept only when the verdict is NOT_REPRODUCED, so a
    caller may compute it before knowing the verdict.
    """
    seeds = seeds or effect.n + left_out
    verdict = judge(claim, effect)
    if 2 * left_out > seeds:
        verdict = Verdict.INCONCLUSIVE
    why = why if verdict is Verdict.NOT_REPRODUCED else ""
    return ScorecardRow(
        claim, experiment, effect, verdict, note, seeds, tuple(diverged), left_out, why
    )


def explained(row: ScorecardRow, why: str) -> ScorecardRow:
    """`row` with its reason set, if it is NOT_REPRODUCED; any other row unchanged."""
    if row.verdict is not Verdict.NOT_REPRODUCED:
        return row
    return replace(row, why=why)


_IOFFE = "Ioffe & Szegedy 2015"
_REPRO_SEED = "reproduction seed (CS4100)"
_OPT_SEED = "optimization-study seed"
_SANTURKAR = "Santurkar et al. 2018"
_FIGURE_ONLY = "shown in a figure; no number in the text"
_WU_HE = "Wu & He 2018 (Group Normalization)"
_WU_JOHNSON = "Wu & Johnson 2021 (Rethinking 'Batch' in BatchNorm)"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "bn-final-accuracy",
        "BN reaches higher final test accuracy.",
        f"{_IOFFE}, Sec. 4.1, Fig. 1a; {_REPRO_SEED}, MNIST and CIFAR-10 tables",
        Direction.HIGHER,
        "paper: " + _FIGURE_ONLY,
        "final test accuracy, BN − no BN (percentage points)",
        unit=" pp",
        digits=2,
        margin=0.2,  # below a fifth of a point no reader would call one net "higher"
        numbers=(
            ("ioffe2015-mnist", "seed, MNIST: 98.15% vs 94.92% (+3.23 pp), one run each"),
            (
                "cifar10-cnn",
                "seed, full CIFAR-10 at 50K steps: 85.23% vs 82.71% (+2.52 pp), one run each "
                "(ours: the 5,000-image subset)",
            ),
        ),
    ),
    Claim(
        "bn-fewer-steps",
        "BN reaches a given test accuracy in fewer training steps.",
        f"{_IOFFE}, Sec. 4.1, Fig. 1a; {_REPRO_SEED}, CIFAR-10 table",
        Direction.LOWER,
        "paper: " + _FIGURE_ONLY,
        "steps to the accuracy threshold, BN − no BN",
        unit=" steps",
        digits=0,
        numbers=(
            (
                "cifar10-cnn",
                "seed, full CIFAR-10 at 5K steps: 74.96% vs 10.00% ('~10× faster'), one run "
                "each (ours: the 5,000-image subset)",
            ),
        ),
    ),
    Claim(
        "bn-percentile-stability",
        "BN keeps the sigmoid-input percentiles (15/50/85th) more stable over training.",
        f"{_IOFFE}, Sec. 4.1, Fig. 1b,c",
        Direction.LOWER,
        "paper: 'much more stable' with BN; " + _FIGURE_ONLY,
        "percentile drift (spread units per evaluation interval, see measures), BN − no BN",
        digits=3,
    ),
    Claim(
        "bn-higher-lr",
        "BN tolerates higher learning rates.",
        f"{_IOFFE}, Sec. 3.3 and 4.2.1; {_REPRO_SEED}, learning-rate table",
        Direction.HIGHER,
        "paper (ImageNet): BN-x30 trains at 30× the rate",
        "log2 of the highest learning rate that trains, BN − no BN (doublings)",
        digits=1,
        numbers=(
            (
                "ioffe2015-lr",
                "seed: BN ahead by +84.66 / +34.10 / +4.19 pp at lr 0.01 / 0.05 / 0.1, one run "
                "each (its table names neither dataset nor optimizer)",
            ),
        ),
    ),
    Claim(
        "bn-init-insensitive",
        "BN reduces sensitivity to initialization.",
        "explainer seed, Key Benefits; notebook seed, Sec. 10",
        Direction.LOWER,
        "stated, not measured; no number",
        "range (max − min) of final test accuracy across init scales, BN − no BN (pp)",
        unit=" pp",
        digits=2,
        margin=0.2,
    ),
    Claim(
        "bn-smoother-loss",
        "BN gives smoother training-loss curves.",
        f"{_OPT_SEED}, Key Findings 3",
        Direction.LOWER,
        "expected, not measured; no number",
        "std of step-to-step training-loss change, BN − no BN (nats)",
        digits=4,
    ),
    Claim(
        "bn-stable-grad-norm",
        "BN keeps gradient norms more stable.",
        f"{_OPT_SEED}, Key Findings 4",
        Direction.LOWER,
        "expected, not measured; no number",
        "coefficient of variation of the gradient norm, BN − no BN",
        digits=3,
    ),
    Claim(
        "santurkar-ics-not-reduced",
        "BN does not reduce internal covariate shift: with BN it is similar or larger.",
        f"{_SANTURKAR}, Sec. 2.2",
        Direction.NOT_LOWER,
        "paper: similar or larger with BN; " + _FIGURE_ONLY,
        "ICS ℓ2 difference (paper's Def. 2.1), log2(BN / no BN)",
        digits=2,
        margin=0.32,  # log2(1.25): BN's ICS may be up to 25% smaller and still count as similar
    ),
    Claim(
        "santurkar-noisy-bn-like-bn",
        "Noisy BN trains about as well as BN.",
        f"{_SANTURKAR}, Sec. 2.1",
        Direction.SIMILAR,
        "paper: noisy BN close to BN; " + _FIGURE_ONLY,
        "final test accuracy, noisy BN − BN (pp)",
        unit=" pp",
        digits=2,
        margin=1.0,  # "about as well": within one percentage point
    ),
    Claim(
        "santurkar-noisy-bn-beats-none",
        "Noisy BN trains better than no BN.",
        f"{_SANTURKAR}, Sec. 2.1",
        Direction.HIGHER,
        "paper: noisy BN above the standard net; " + _FIGURE_ONLY,
        "final test accuracy, noisy BN − no BN (pp)",
        unit=" pp",
        digits=2,
    ),
    Claim(
        "santurkar-noisy-bn-less-stable",
        "Noisy BN's activation distributions are less stable than BN's.",
        f"{_SANTURKAR}, Sec. 2.1",
        Direction.HIGHER,
        "paper: visibly less stable; " + _FIGURE_ONLY,
        "percentile drift, noisy BN − BN",
        digits=3,
    ),
    Claim(
        "santurkar-loss-variation",
        "With BN the loss varies less along the gradient direction.",
        f"{_SANTURKAR}, Sec. 3.1",
        Direction.LOWER,
        "paper: smaller with BN; " + _FIGURE_ONLY,
        "loss landscape variation (max − min loss along the gradient), log2(BN / no BN)",
        digits=2,
    ),
    Claim(
        "santurkar-gradient-predictiveness",
        "With BN the gradient changes less along the gradient direction.",
        f"{_SANTURKAR}, Sec. 3.1",
        Direction.LOWER,
        "paper: smaller with BN; " + _FIGURE_ONLY,
        "ℓ2 gradient change along the gradient, log2(BN / no BN)",
        digits=2,
    ),
    Claim(
        "santurkar-beta-smoothness",
        "With BN the effective β-smoothness is smaller.",
        f"{_SANTURKAR}, Sec. 3.1",
        Direction.LOWER,
        "paper: smaller with BN; " + _FIGURE_ONLY,
        "effective β-smoothness, log2(BN / no BN)",
        digits=2,
    ),
    # Scale-free versions of two of the paper's measures (ours): the ℓ2 ones scale with the
    # gradient's norm, which BN changes, so these say the same without that scale.
    Claim(
        "santurkar-gradient-predictiveness-relative",
        "With BN the gradient changes less along the gradient direction, relative to its norm.",
        f"{_SANTURKAR}, Sec. 3.1 (scale-free form: ours)",
        Direction.LOWER,
        "paper: smaller with BN (ℓ2 form); " + _FIGURE_ONLY,
        "max gradient change over the grid / ||g||, log2(BN / no BN)",
        digits=2,
    ),
    Claim(
        "santurkar-ics-cosine-not-reduced",
        "BN does not reduce internal covariate shift, measured as 1 − cos(G, G').",
        f"{_SANTURKAR}, Sec. 2.2, Fig. 5 (cosine form)",
        Direction.NOT_LOWER,
        "paper: cosine similar or lower with BN; " + _FIGURE_ONLY,
        "1 − cos(G, G'), BN − no BN",
        digits=3,
        margin=0.05,  # a cosine distance within 0.05 of the baseline's counts as similar
    ),
    # ---- BN's limits and its alternatives (the small-batch, train-test-stats and
    # bn-placement experiments); "BN minus comparison" reads as "first minus second"
    Claim(
        "bn-small-batch-error",
        "BN's error grows sharply as the batch shrinks.",
        f"{_WU_HE}, Fig. 1, Table 2",
        Direction.HIGHER,
        "BN 34.7% at batch 2 vs 23.6% at 32 (+11.1 pp), ResNet-50 on ImageNet",
        "BN's final test error at the smallest batch − at batch 32 (percentage points)",
        unit=" pp",
        digits=2,
        margin=1.0,  # a point of error is within what a change of seeds moves
    ),
    Claim(
        "gn-small-batch-flat",
        "GroupNorm's error stays flat as the batch shrinks.",
        f"{_WU_HE}, Fig. 1, Table 2",
        Direction.SIMILAR,
        "GN 24.1% at batch 2 vs 24.1% at 32 (0.0 pp), ResNet-50 on ImageNet",
        "GN's final test error at the smallest batch − at batch 32 (percentage points)",
        unit=" pp",
        digits=2,
        margin=2.0,  # "flat" next to BN's +11 pp; fewer epochs' noise at batch 2 allowed
    ),
    Claim(
        "gn-beats-bn-small-batch",
        "At a batch of 2, GroupNorm has lower error than BN.",
        f"{_WU_HE}, abstract and Table 2",
        Direction.HIGHER,
        "'10.6% lower error than its BN counterpart' (34.7% vs 24.1%) at batch 2",
        "final test error at the smallest batch, BN − GN (percentage points)",
        unit=" pp",
        digits=2,
        margin=1.0,
    ),
    Claim(
        "precise-bn-not-worse",
        "Precise population statistics (an equal-weight average over batches after training) "
        "evaluate at least as well as BN's EMA running statistics.",
        f"{_WU_JOHNSON}, Sec. 3",
        Direction.NOT_LOWER,
        "paper's numbers not transcribed here (its tables were not readable in this project)",
        "test accuracy with precise statistics − with EMA statistics, smallest batch (pp)",
        unit=" pp",
        digits=2,
        margin=0.5,
    ),
    Claim(
        "batch-stats-small-batch",
        "At small batch sizes, normalizing test batches of the training size with their own "
        "statistics beats population statistics (the train-test inconsistency).",
        f"{_WU_JOHNSON}, Sec. 4",
        Direction.HIGHER,
        "paper's numbers not transcribed here (its tables were not readable in this project)",
        "test accuracy with batch statistics − with precise statistics, smallest batch (pp)",
        unit=" pp",
        digits=2,
        margin=0.2,
    ),
    Claim(
        "bn-before-nonlinearity",
        "BN belongs before the nonlinearity (normalizing x = Wu + b), not after it.",
        f"{_IOFFE}, Sec. 3.2",
        Direction.HIGHER,
        "a design argument ('more likely to have a symmetric, non-sparse distribution'); "
        "the paper runs no comparison",
        "final test accuracy, BN before − BN after the activation (percentage points)",
        unit=" pp",
        digits=2,
        margin=0.2,
    ),
)

CLAIMS_BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}
