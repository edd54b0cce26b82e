"""Verdicts from pre-registered rules: the tests, the multiplicity control, the decision.

For one rule (`bnlab.report.rules.Rule`) the per-seed effects d_1..d_n (on the rule's scale)
are tested with two one-sided paired t-tests (`scipy.stats.ttest_1samp`; TOST from
`statsmodels`), one whose rejection reproduces the claim and one whose rejection refutes it:

| claim     | reproduced when it rejects        | not reproduced when it rejects      |
|-----------|-----------------------------------|-------------------------------------|
| HIGHER    | H0: mu <= 0 (t-test, "greater")   | H0: mu >= m (below the margin)      |
| LOWER     | H0: mu >= 0 (t-test, "less")      | H0: mu <= -m                        |
| SIMILAR   | H0: |mu| >= m (TOST)              | H0: |mu| <= m (nearer side, x2)     |
| NOT_LOWER | H0: mu <= -m (non-inferiority)    | H0: mu >= -m                        |

"Below the margin" covers an effect that is negligible as well as one that is reversed. For
SIMILAR the refuting p-value is the smaller one-sided test beyond +m or -m, doubled
(Bonferroni over the two sides).
A superiority claim whose effect is clearly there but smaller than the margin is reproduced
(the row says "below the margin"). At most one of a row's two null hypotheses can be true,
so its *decisive* p-value, the smaller of the two, is a valid p-value for the row; Holm's
step-down method over the decisive p-values of every primary row of a source's family
(`statsmodels.stats.multitest.multipletests`) decides the verdicts at a one-sided level
ALPHA = 0.025, the level of the 95% intervals shown, so the family-wise error rate is 5%.
Benjamini-Hochberg q-values are computed the same way and shown beside.

Rows that are not primary (a secondary setting declared before the runs, or anything
exploratory) keep their unadjusted p-values and are never counted.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from bnlab.report.claims import Direction
from bnlab.report.rules import Role, Rule, Scale, Test
from bnlab.report.stats import Estimate, format_estimate, mean_ci

ALPHA = 0.025  # one-sided, per test: the level of the two-sided 95% intervals shown


class Verdict(enum.Enum):
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not reproduced"
    INCONCLUSIVE = "inconclusive"
    NOT_MEASURABLE = "not measurable"  # a gate failed: the setting cannot answer the claim


@dataclass(frozen=True)
class Tests:
    """The two one-sided tests of a rule on its effects, and which one decides."""

    support: str  # what the reproducing test shows, e.g. "mu > 0"
    p_support: float
    against: str  # what the refuting test shows, e.g. "mu < 0.32"
    p_against: float

    @property
    def decisive(self) -> tuple[str, float]:
        """("support" or "against", p): the smaller of the two p-values."""
        if self.p_against < self.p_support:
            return "against", self.p_against
        return "support", self.p_support


def _t(d: np.ndarray, popmean: float, alternative: str) -> float:
    if float(np.ptp(d)) == 0.0:  # no spread: the sign of the gap decides exactly
        gap = float(d[0]) - popmean
        holds = gap > 0 if alternative == "greater" else gap < 0
        return 0.0 if holds else 1.0
    return float(stats.ttest_1samp(d, popmean, alternative=alternative).pvalue)


def run_tests(rule: Rule, d: Sequence[float]) -> Tests:
    """The two one-sided tests of `rule` on the per-seed effects `d` (finite, n >= 2)."""
    d = np.asarray(d, dtype=float)
    m, direction = rule.margin, rule.claim.direction
    t = f"{m:.3g}"
    if direction is Direction.HIGHER:
        return Tests("mu > 0", _t(d, 0.0, "greater"), f"mu < {t}", _t(d, m, "less"))
    if direction is Direction.LOWER:
        return Tests("mu < 0", _t(d, 0.0, "less"), f"mu > -{t}", _t(d, -m, "greater"))
    if direction is Direction.SIMILAR:
        p_tost = _tost(d, m)
        outside = min(1.0, 2.0 * min(_t(d, m, "greater"), _t(d, -m, "less")))
        return Tests(f"|mu| < {t} (TOST)", p_tost, f"|mu| > {t}", outside)
    # NOT_LOWER: non-inferiority at -m
    return Tests(f"mu > -{t}", _t(d, -m, "greater"), f"mu < -{t}", _t(d, -m, "less"))


def _tost(d: np.ndarray, m: float) -> float:
    """The TOST p-value for |mu| < m: statsmodels' paired TOST of d against zeros."""
    if float(np.ptp(d)) == 0.0:
        return 0.0 if abs(float(d[0])) < m else 1.0
    p, _, _ = ttost_paired(d, np.zeros_like(d), -m, m)
    return float(p)


def paired_effects(rule: Rule, treatment, comparison) -> np.ndarray:
    """Per-seed effects on the rule's scale: BN − comparison, or log2(BN / comparison).
    NaN where either value is missing (not finite) or a ratio is undefined (<= 0)."""
    a = np.asarray(treatment, dtype=float)
    b = np.asarray(comparison, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"Rule {rule.id}: got {a.shape} and {b.shape} values, expected one pair per seed"
        )
    if rule.scale is Scale.DIFFERENCE:
        return a - b
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            (a > 0) & (b > 0), np.log2(np.where(a > 0, a, 1) / np.where(b > 0, b, 1)), np.nan
        )
    return ratio


@dataclass(frozen=True)
class Row:
    """One rule measured: its effects, tests and verdict (after `decide_families`)."""

    rule: Rule
    effect: Estimate  # mean and 95% t interval of the per-seed effects, over the measured seeds
    effects: tuple[float, ...]  # per seed (NaN: not measured), for per-seed points in figures
    tests: Tests | None  # None: not measurable
    verdict: Verdict = Verdict.INCONCLUSIVE
    p_holm: float = math.nan  # Holm-adjusted decisive p within the family (primary rows)
    q_bh: float = math.nan  # Benjamini-Hochberg q of the same p-values
    unadjusted: Verdict = Verdict.INCONCLUSIVE  # the verdict at ALPHA without adjustment
    gate_failed: str = ""  # why the setting cannot answer the claim (a gate's reason)
    diverged: tuple[tuple[str, int], ...] = ()  # (network label, seeds diverged)
    seeds: int = 0  # seeds run
    note: str = ""  # e.g. how the setting differs from the source's
    diagnostics: tuple = field(default=())  # `bnlab.report.diagnostics.Diagnostic`s
    why: str = ""  # the most likely reason, from this row's diagnostics
    registration: object = None  # `registration.Registration`: None when not checked

    @property
    def claim(self):
        return self.rule.claim

    @property
    def experiment(self) -> str:
        return self.rule.setting

    @property
    def role(self) -> Role:
        """The rule's role, except that a rule not registered before its runs is
        exploratory, whatever it was declared as."""
        if self.registration is not None and not self.registration.predates:
            return Role.EXPLORATORY
        return self.rule.role

    @property
    def counted(self) -> bool:
        return self.role is Role.PRIMARY

    @property
    def p_shown(self) -> float:
        """The p-value of the verdict shown: the decisive test's, unadjusted."""
        return math.nan if self.tests is None else self.tests.decisive[1]

    @property
    def effect_text(self) -> str:
        """'3.20 pp ± 0.41 (95% CI, n=5), one-sided p = 0.0021 (Holm 0.013)', or why the row
        is not measurable."""
        if self.tests is None:
            return f"not measurable: {self.gate_failed}"
        text = format_estimate(self.effect, digits=self.rule.digits, unit=self.rule.unit)
        side, p = self.tests.decisive
        test = self.tests.support if side == "support" else self.tests.against
        text += f"; {test}: one-sided p {_p(p)}"
        if not math.isnan(self.p_holm):
            text += f", Holm {_p(self.p_holm)}, BH q {_p(self.q_bh)}"
        return text

    @property
    def divergence_text(self) -> str:
        """'no BN diverged in 2/5 seeds', or '' when no seed diverged."""
        return "; ".join(
            f"{label} diverged in {k}/{self.seeds} seeds" for label, k in self.diverged if k
        )

    @property
    def reference(self) -> str:
        return self.claim.reference_for(self.experiment)

    @property
    def below_margin(self) -> bool:
        """A reproduced superiority claim whose interval lies inside ±margin."""
        m = self.rule.margin
        return (
            self.verdict is Verdict.REPRODUCED
            and self.rule.test is Test.SUPERIORITY
            and m > 0
            and self.effect.has_ci
            and -m < self.effect.low
            and self.effect.high < m
        )


def _p(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"= {p:.2g}"


def measure_rule(
    rule: Rule,
    treatment,
    comparison,
    *,
    gate_failed: str = "",
    diverged: Sequence[tuple[str, int]] = (),
    note: str = "",
) -> Row:
    """The row of `rule` from paired per-seed values (treatment, comparison), before the
    family's multiplicity control. `gate_failed` (a reason) makes it not measurable; so does
    a missing value for any seed (a measure that does not exist for every seed is never
    averaged over the rest: the survivors would be a selected sample)."""
    d = paired_effects(rule, treatment, comparison)
    seeds = int(d.size)
    common = dict(diverged=tuple(diverged), seeds=seeds, note=note, effects=tuple(d.tolist()))
    missing = int(np.sum(~np.isfinite(d)))
    if not gate_failed and missing:
        gate_failed = f"{missing} of {seeds} seeds have no value for this measure"
    if not gate_failed and seeds < 2:
        gate_failed = "one seed: no interval"
    if gate_failed:
        finite = d[np.isfinite(d)]
        effect = mean_ci(finite) if finite.size else Estimate(math.nan, math.nan, math.nan, 0, "")
        return Row(
            rule,
            effect,
            tests=None,
            verdict=Verdict.NOT_MEASURABLE,
            unadjusted=Verdict.NOT_MEASURABLE,
            gate_failed=gate_failed,
            **common,
        )
    tests = run_tests(rule, d)
    effect = mean_ci(d)
    verdict = _verdict(tests, tests.decisive[1])
    return Row(rule, effect, tests=tests, verdict=verdict, unadjusted=verdict, **common)


def _verdict(tests: Tests, p: float) -> Verdict:
    """The verdict of the decisive test at p-value `p` (its own, or adjusted)."""
    if not p < ALPHA:
        return Verdict.INCONCLUSIVE
    side, _ = tests.decisive
    return Verdict.REPRODUCED if side == "support" else Verdict.NOT_REPRODUCED


def decide_families(rows: Sequence[Row]) -> list[Row]:
    """Every row with its final verdict: primary rows by Holm within their claim's family
    (over the measurable primary rows present), with BH q-values beside; other rows keep
    their unadjusted verdicts. Order is preserved."""
    out = list(rows)
    families: dict[str, list[int]] = {}
    for i, row in enumerate(out):
        if row.counted and row.tests is not None:
            families.setdefault(row.claim.family, []).append(i)
    for members in families.values():
        p = np.array([out[i].tests.decisive[1] for i in members])
        _, p_holm, _, _ = multipletests(p, alpha=ALPHA, method="holm")
        _, q_bh, _, _ = multipletests(p, alpha=ALPHA, method="fdr_bh")
        for i, ph, qb in zip(members, p_holm, q_bh, strict=True):
            row = out[i]
            verdict = _verdict(row.tests, float(ph))
            out[i] = replace(row, verdict=verdict, p_holm=float(ph), q_bh=float(qb))
    return out


def bh_verdict(row: Row) -> Verdict:
    """The verdict a primary row would get with Benjamini-Hochberg instead of Holm."""
    if row.tests is None or not row.counted:
        return row.verdict
    return _verdict(row.tests, row.q_bh)


def counts(rows: Sequence[Row], adjust: str = "holm") -> dict[Verdict, int]:
    """Verdict counts over the primary rows: "holm" (the verdicts), "bh" or "none"."""
    tally = dict.fromkeys(Verdict, 0)
    for row in rows:
        if not row.counted:
            continue
        verdict = {"holm": row.verdict, "bh": bh_verdict(row), "none": row.unadjusted}[adjust]
        tally[verdict] += 1
    return tally
