"""What would decide an inconclusive verdict: the seed counts against the noncentral t
distribution computed with SciPy, every inconclusive primary row listed (and only those), and
an effect on a boundary given no count."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from bnlab.report import Measure, Role, Rule, Scale, Verdict, decide_families, measure_rule
from bnlab.report import claims as C
from bnlab.report.planning import seeds_to_decide, undecided_sentence, undecided_table
from bnlab.report.verdicts import ALPHA

PP = Measure("acc", "final test accuracy (%)", " pp", low=0, high=100)


def rule(claim, setting="s", role=Role.PRIMARY, margin=0.5):
    return Rule(claim, setting, PP, Scale.DIFFERENCE, margin, 5, role=role)


def seeds(mean: float, spread: float = 1.0, n: int = 5) -> np.ndarray:
    return mean + spread * np.linspace(-1.0, 1.0, n)


def power(effect_size: float, n: int, alpha: float) -> float:
    """A one-sided one-sample t-test's power, from the noncentral t (independent of
    statsmodels)."""
    df = n - 1
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, effect_size * math.sqrt(n)))


def test_the_count_is_the_least_n_with_80_percent_power_at_the_holm_level():
    d = seeds(0.3, 1.0)  # HIGHER, margin 0.5: mean 0.3 is 0.3 above 0 and 0.2 below m
    row = measure_rule(rule(C.BN_FINAL_ACCURACY), d, np.zeros_like(d))
    assert row.verdict is Verdict.INCONCLUSIVE
    k = 4
    n = seeds_to_decide(row, k)
    size = 0.3 / float(np.std(d, ddof=1))  # the support test is the nearer to rejecting
    alpha = ALPHA / k
    assert power(size, n, alpha) >= 0.8 > power(size, n - 1, alpha)
    assert seeds_to_decide(row, 1) < n  # a larger family asks for more seeds


def test_the_refuting_side_counts_when_it_is_closer():
    d = seeds(0.45, 1.0)  # 0.05 below the margin, 0.45 above 0: supporting wins
    row = measure_rule(rule(C.BN_FINAL_ACCURACY), d, np.zeros_like(d))
    low = seeds(0.05, 1.0)  # 0.45 below the margin: refuting wins
    row_low = measure_rule(rule(C.BN_FINAL_ACCURACY), low, np.zeros_like(low))
    sd = float(np.std(d, ddof=1))
    assert power(0.45 / sd, seeds_to_decide(row_low, 1), ALPHA) >= 0.8
    assert seeds_to_decide(row, 1) == seeds_to_decide(row_low, 1)  # mirror images


def test_an_effect_on_a_boundary_gets_no_count():
    d = seeds(0.5, 1.0)  # SIMILAR with margin 0.5: |mean| = m, neither test can reject
    row = measure_rule(rule(C.SANTURKAR_NOISY_BN_LIKE_BN, margin=0.5), d, np.zeros_like(d))
    assert row.verdict is Verdict.INCONCLUSIVE and seeds_to_decide(row, 1) is None
    near = measure_rule(rule(C.SANTURKAR_NOISY_BN_LIKE_BN), seeds(0.3, 1.0), np.zeros(5))
    assert seeds_to_decide(near, 1) is not None
    flat = measure_rule(rule(C.BN_FINAL_ACCURACY), np.full(5, 0.3), np.zeros(5))
    assert seeds_to_decide(flat, 1) is None  # no spread: nothing to plan with


def test_the_table_lists_every_inconclusive_primary_row_and_only_those():
    undecided, decided = seeds(0.3, 1.0), seeds(3.0, 0.5)
    rows = decide_families(
        [
            measure_rule(rule(C.BN_FINAL_ACCURACY, "a"), undecided, np.zeros(5)),
            measure_rule(rule(C.BN_FINAL_ACCURACY, "b"), decided, np.zeros(5)),
            measure_rule(rule(C.BN_FINAL_ACCURACY, "c", Role.SECONDARY), undecided, np.zeros(5)),
        ]
    )
    assert [r.verdict for r in rows] == [Verdict.INCONCLUSIVE, Verdict.REPRODUCED] * 1 + [
        Verdict.INCONCLUSIVE
    ]
    block = undecided_table(rows)
    assert [r[1] for r in block.rows] == ["a"]
    assert block.rows[0][2] == "5" and int(block.rows[0][3]) == seeds_to_decide(rows[0], 2)
    assert undecided_table(rows[1:]) is None  # the secondary row is not listed


def test_the_sentence_splits_lack_of_seeds_from_an_effect_on_a_boundary():
    near = measure_rule(rule(C.SANTURKAR_NOISY_BN_LIKE_BN, "a"), seeds(0.3, 1.0), np.zeros(5))
    d = seeds(0.5, 1.0)
    on = measure_rule(rule(C.SANTURKAR_NOISY_BN_LIKE_BN, "b", margin=0.5), d, np.zeros_like(d))
    rows = decide_families([near, on])
    assert [r.verdict for r in rows] == [Verdict.INCONCLUSIVE] * 2
    n = seeds_to_decide(rows[0], 2)
    assert undecided_sentence(rows) == (
        f"Of the 2 inconclusive primary rows, 1 is inconclusive for lack of seeds (from {n:,} "
        f"to {n:,} seeds at the observed effect) and 1 would stay inconclusive with any number "
        "up to 10,000: the observed effect sits at a boundary of both tests."
    )
    assert undecided_sentence(rows[:1]).startswith("Of the 1 inconclusive primary row, 1 is")
    assert undecided_sentence([]) == ""
