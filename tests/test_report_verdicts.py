"""Verdicts from pre-registered rules: the tests against SciPy/statsmodels computed by hand,
Holm within families, what is not counted, gates, rule validation, registration, symmetry."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from bnlab.report import (
    Diagnostic,
    Gate,
    Measure,
    Role,
    Rule,
    Scale,
    Verdict,
    check_margin,
    check_symmetric,
    counts,
    decide_families,
    measure_rule,
    registration,
)
from bnlab.report import claims as C
from bnlab.report.claims import Direction
from bnlab.report.verdicts import ALPHA

PP = Measure("acc", "final test accuracy (%)", " pp", low=0, high=100)
RATIO = Measure("ics", "ICS as 1 − cos(G, G')", scale_dependent=True, low=0)


def rule(claim, margin=0.5, scale=Scale.DIFFERENCE, measure=PP, setting="s", role=Role.PRIMARY):
    return Rule(claim, setting, measure, scale, margin, 5, role=role)


def seeds(mean: float, spread: float = 1.0, n: int = 5) -> np.ndarray:
    """n values with exactly this mean and a fixed, non-zero spread."""
    z = np.linspace(-1.0, 1.0, n)
    return mean + spread * z


def test_superiority_p_values_are_scipys_one_sided_t_tests():
    d = seeds(1.0)
    row = measure_rule(rule(C.BN_FINAL_ACCURACY), d, np.zeros_like(d))
    assert row.tests.p_support == pytest.approx(
        stats.ttest_1samp(d, 0, alternative="greater").pvalue
    )
    assert row.tests.p_against == pytest.approx(
        stats.ttest_1samp(d, 0.5, alternative="less").pvalue
    )
    assert row.verdict is Verdict.REPRODUCED and row.p_shown == row.tests.p_support


def test_an_equivalence_row_shows_the_tost_p_value():
    d = seeds(0.1, 0.3)
    row = measure_rule(rule(C.GN_SMALL_BATCH_FLAT, margin=2.0), d, np.zeros_like(d))
    tost, _, _ = ttost_paired(d, np.zeros_like(d), -2.0, 2.0)
    assert row.tests.p_support == pytest.approx(tost)
    assert row.verdict is Verdict.REPRODUCED
    assert row.p_shown == pytest.approx(tost)  # the p shown is the equivalence test's
    assert "TOST" in row.tests.support


def test_non_inferiority_tests_against_minus_the_margin():
    d = seeds(-0.1, 0.2)
    row = measure_rule(rule(C.PRECISE_BN_NOT_WORSE, margin=0.5), d, np.zeros_like(d))
    p = stats.ttest_1samp(d, -0.5, alternative="greater").pvalue
    assert row.tests.p_support == pytest.approx(p) and row.verdict is Verdict.REPRODUCED


@pytest.mark.parametrize(
    ("claim", "mean", "spread", "expected"),
    [
        (C.BN_FINAL_ACCURACY, 2.0, 1.0, Verdict.REPRODUCED),
        (C.BN_FINAL_ACCURACY, -2.0, 1.0, Verdict.NOT_REPRODUCED),  # reversed
        (C.BN_FINAL_ACCURACY, 0.0, 0.1, Verdict.NOT_REPRODUCED),  # negligible: below the margin
        (C.BN_FINAL_ACCURACY, 0.3, 3.0, Verdict.INCONCLUSIVE),
        (C.BN_FEWER_STEPS, -2.0, 1.0, Verdict.REPRODUCED),  # LOWER mirrors HIGHER
        (C.BN_FEWER_STEPS, 2.0, 1.0, Verdict.NOT_REPRODUCED),
        (C.GN_SMALL_BATCH_FLAT, 5.0, 1.0, Verdict.NOT_REPRODUCED),  # clearly outside ±m
        (C.SANTURKAR_ICS_NOT_REDUCED, -3.0, 0.5, Verdict.NOT_REPRODUCED),
    ],
)
def test_verdicts_follow_the_direction_and_the_margin(claim, mean, spread, expected):
    d = seeds(mean, spread)
    r = rule(claim, margin=0.5 if claim is not C.GN_SMALL_BATCH_FLAT else 2.0)
    assert measure_rule(r, d, np.zeros_like(d)).verdict is expected


def test_the_deep_linear_cosine_pilot_is_not_reproduced_on_a_ratio_scale():
    """BN's 1 − cos near 0 against the baseline's ~0.04: 'BN does not reduce ICS' fails."""
    bn, base = seeds(0.002, 0.0005), seeds(0.04, 0.004)
    r = rule(C.SANTURKAR_ICS_COSINE_NOT_REDUCED, math.log2(1.25), Scale.LOG2_RATIO, RATIO)
    row = measure_rule(r, bn, base)
    assert row.effect.mean < -3 and row.verdict is Verdict.NOT_REPRODUCED


def test_a_scale_dependent_measure_needs_a_ratio_scale_and_margins_below_the_baseline():
    with pytest.raises(ValueError, match="scale-dependent"):
        rule(C.SANTURKAR_ICS_COSINE_NOT_REDUCED, 0.05, Scale.DIFFERENCE, RATIO)
    absolute = Rule(C.SANTURKAR_ICS_COSINE_NOT_REDUCED, "s", PP, Scale.DIFFERENCE, 0.05, 5)
    with pytest.raises(ValueError, match="at least the no BN network's own value"):
        check_margin(absolute, [0.041, 0.039, 0.040])  # the pilot's baseline: ~0.04
    check_margin(absolute, [1.0, 2.0])  # a margin well below the quantity is fine


def test_rule_validation():
    with pytest.raises(ValueError, match="needs a margin"):
        rule(C.GN_SMALL_BATCH_FLAT, margin=0.0)
    with pytest.raises(ValueError, match="seeds"):
        Rule(C.BN_FINAL_ACCURACY, "s", PP, Scale.DIFFERENCE, 0.5, 1)


def test_a_missing_seed_or_a_failed_gate_makes_the_row_not_measurable():
    d = seeds(2.0)
    missing = d.copy()
    missing[2] = np.nan
    row = measure_rule(rule(C.BN_FINAL_ACCURACY), missing, np.zeros_like(d))
    assert row.verdict is Verdict.NOT_MEASURABLE and "1 of 5 seeds" in row.gate_failed
    gated = measure_rule(rule(C.BN_FINAL_ACCURACY), d, np.zeros_like(d), gate_failed="no")
    assert gated.verdict is Verdict.NOT_MEASURABLE and gated.tests is None


def test_log2_ratios_are_per_seed():
    r = rule(C.BN_FEWER_STEPS, math.log2(1.25), Scale.LOG2_RATIO, RATIO)
    row = measure_rule(r, [1.0, 2.0, 4.0], [2.0, 2.0, 2.0])
    assert row.effects == pytest.approx((-1.0, 0.0, 1.0))


def test_holm_decides_within_a_family_and_families_do_not_mix():
    ps = []
    rows = []
    for i, mean in enumerate((1.6, 1.3, 1.1)):
        d = seeds(mean)
        row = measure_rule(rule(C.BN_FINAL_ACCURACY, setting=f"s{i}"), d, np.zeros_like(d))
        rows.append(row)
        ps.append(row.tests.p_support)
    other = measure_rule(rule(C.BN_SMOOTHER_LOSS, margin=0.1), seeds(-5), np.zeros(5))
    decided = decide_families([*rows, other])
    expected = multipletests(ps, alpha=ALPHA, method="holm")[1]
    assert [r.p_holm for r in decided[:3]] == pytest.approx(list(expected))
    assert decided[3].p_holm == pytest.approx(other.tests.p_support)  # its own family of one
    for row, p in zip(decided[:3], expected, strict=True):
        assert (row.verdict is Verdict.REPRODUCED) == (p < ALPHA)
    assert counts(decided, "none")[Verdict.REPRODUCED] >= counts(decided)[Verdict.REPRODUCED]


def test_secondary_and_exploratory_rows_are_not_counted_nor_adjusted():
    d = seeds(2.0)
    secondary = measure_rule(rule(C.BN_FINAL_ACCURACY, role=Role.SECONDARY), d, 0 * d)
    exploratory = measure_rule(rule(C.BN_FINAL_ACCURACY, role=Role.EXPLORATORY), d, 0 * d)
    decided = decide_families([secondary, exploratory])
    assert all(math.isnan(r.p_holm) for r in decided)
    assert sum(counts(decided).values()) == 0


def test_fingerprints_change_with_the_rule():
    a = rule(C.BN_FINAL_ACCURACY)
    assert a.fingerprint() == rule(C.BN_FINAL_ACCURACY).fingerprint()
    assert a.fingerprint() != rule(C.BN_FINAL_ACCURACY, margin=0.2).fingerprint()
    gated = Rule(C.BN_FINAL_ACCURACY, "s", PP, Scale.DIFFERENCE, 0.5, 5, (Gate("g", "x"),))
    assert a.fingerprint() != gated.fingerprint()
    # new seeds are a new rule; seed 0 leaves the fingerprints recorded before first_seed existed
    later = replace(a, first_seed=1000)
    assert a.fingerprint() != later.fingerprint() and "first_seed" not in a.as_dict()
    assert (a.seeds_text, later.seeds_text) == ("5", "5 (seeds 1000–1004)")


def test_registration_says_whether_a_rule_predates_its_runs(tmp_path):
    a = rule(C.BN_FINAL_ACCURACY)
    record = registration.register(tmp_path, [a], "0.1.0+git.abc1234")
    when = record[a.id]["registered"]
    later = "9999-01-01 00:00:00 UTC"
    assert registration.status(record, a, later).predates
    assert registration.status(record, a, "2000-01-01 00:00:00 UTC").state == "after"
    changed = rule(C.BN_FINAL_ACCURACY, margin=0.2)
    assert registration.status(record, changed, later).state == "changed"
    # an entry is never overwritten: the first fingerprint stays on record
    again = registration.register(tmp_path, [changed], "0.1.0+git.def5678")
    assert again[a.id]["fingerprint"] == a.fingerprint() and again[a.id]["registered"] == when
    assert registration.status({}, a, later).state == "missing"
    dirty = registration.register(tmp_path / "d", [a], "0.1.0+git.abc1234-dirty")
    assert registration.status(dirty, a, later).state == "after"


def test_a_rule_not_registered_before_its_runs_is_exploratory():
    from dataclasses import replace

    d = seeds(2.0)
    row = measure_rule(rule(C.BN_FINAL_ACCURACY), d, 0 * d)
    late = replace(row, registration=registration.Registration("after", "x", "y"))
    assert late.role is Role.EXPLORATORY and not late.counted


def test_a_diagnostic_shown_on_failed_rows_only_is_refused():
    from dataclasses import replace

    good = measure_rule(rule(C.BN_STABLE_GRAD_NORM, setting="a"), seeds(-2), np.zeros(5))
    bad = measure_rule(rule(C.BN_STABLE_GRAD_NORM, setting="b"), seeds(2), np.zeros(5))
    diag = Diagnostic("trend-free", None)
    with pytest.raises(ValueError, match="must run on every row"):
        check_symmetric([good, replace(bad, diagnostics=(diag,))])
    check_symmetric([replace(good, diagnostics=(diag,)), replace(bad, diagnostics=(diag,))])


def test_every_claim_belongs_to_a_family_and_directions_are_set():
    for claim in C.CLAIMS:
        assert claim.family in C.FAMILIES and isinstance(claim.direction, Direction)
    assert C.BN_INIT_INSENSITIVE.family == C.IOFFE  # the paper's abstract makes this claim
