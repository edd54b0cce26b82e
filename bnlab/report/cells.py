"""How a verdict row reads in a table cell: the effect with its units and interval, what the
claim predicts (with an arrow), the test and its p-values, the verdict mark, the rule's
registration. One wording for every page and both formats."""

from __future__ import annotations

import math

from bnlab.report.claims import Direction
from bnlab.report.rules import Role, Rule, Scale
from bnlab.report.verdicts import Row, Verdict

MARKS = {
    Verdict.REPRODUCED: "✓",
    Verdict.NOT_REPRODUCED: "✗",
    Verdict.INCONCLUSIVE: "?",
    Verdict.NOT_MEASURABLE: "–",
}
LEGEND = (
    "✓ reproduced · ✗ not reproduced · ? inconclusive (the seeds do not decide) · – not "
    "measurable (a gate failed: the setting cannot answer the claim)"
)


def _num(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}"


def effect_cell(row: Row) -> str:
    """'+1.33 pp [+1.12, +1.54]' or '−0.83 log2 (×0.56) [−1.02, −0.64]': mean and 95% CI of
    the per-seed effects, in the rule's units; or why it was not measured."""
    est, rule = row.effect, row.rule
    if row.tests is None:
        return f"not measurable: {row.gate_failed}"
    d = rule.digits
    text = f"{_num(est.mean, d)}{rule.unit}"
    if rule.scale is Scale.LOG2_RATIO:
        text += f" (×{2.0**est.mean:.2f})"
    if est.has_ci:
        text += f" [{_num(est.low, d)}, {_num(est.high, d)}]"
    return text


def prediction_cell(rule: Rule) -> str:
    """What the claim predicts for the effect, with an arrow: '↑ above 0 (margin 0.5 pp)'."""
    m, unit = f"{rule.margin:.2g}", rule.unit
    direction = rule.claim.direction
    if direction is Direction.HIGHER:
        return f"↑ above 0 (negligible below {m}{unit})"
    if direction is Direction.LOWER:
        return f"↓ below 0 (negligible above −{m}{unit})"
    if direction is Direction.SIMILAR:
        return f"≈ within ±{m}{unit}"
    return f"≥ not below −{m}{unit}"


def _p(p: float) -> str:
    if math.isnan(p):
        return "—"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def test_cell(row: Row) -> str:
    """'μ > 0: p 0.0021, Holm 0.013': the decisive one-sided test (the verdict's) and its
    Holm-adjusted p where the row is counted."""
    if row.tests is None:
        return "—"
    side, p = row.tests.decisive
    test = row.tests.support if side == "support" else row.tests.against
    text = f"{test.replace('mu', 'μ')}: p {_p(p)}"
    if row.counted and not math.isnan(row.p_holm):
        text += f", Holm {_p(row.p_holm)}"
    return text


def verdict_cell(row: Row) -> str:
    """'✓ reproduced'; a row that is not counted says why ('secondary', 'exploratory')."""
    text = f"{MARKS[row.verdict]} {row.verdict.value}"
    if row.verdict is Verdict.REPRODUCED and row.below_margin:
        text += " (below the margin)"
    if row.role is Role.SECONDARY:
        return f"{text} (secondary, not counted)"
    if row.role is Role.EXPLORATORY:
        return f"exploratory: {row.verdict.value}, not a verdict"
    return text


def n_cell(row: Row) -> str:
    """'20' or '20 (no BN diverged in 3)'."""
    diverged = [f"{label} diverged in {k}" for label, k in row.diverged if k]
    return f"{row.seeds}" + (f" ({'; '.join(diverged)})" if diverged else "")


def registration_cell(row: Row) -> str:
    reg = row.registration
    return "not checked" if reg is None else reg.text


def setting_label(row: Row) -> str:
    """The setting, with what the effect compares when it is not BN vs no BN."""
    rule = row.rule
    if (rule.treatment, rule.comparison) == ("BN", "no BN"):
        return rule.setting
    return f"{rule.setting} ({rule.treatment} vs {rule.comparison})"
