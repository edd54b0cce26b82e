"""The forest plot puts every verdict on one scale where right means "the claim holds".

Rows are built the way the report builds them (`measure_rule` on per-seed values, then
`decide_families`); the positions drawn are read back from the figure's artists and compared
with the standardisation computed by hand from the per-seed effects.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bnlab.report import claims
from bnlab.report.forest import VERDICT_STYLES, draw_forest_plot, forest_plot, standardise
from bnlab.report.rules import Measure, Role, Rule, Scale
from bnlab.report.verdicts import Verdict, decide_families, measure_rule

ACCURACY = Measure("acc", "final test accuracy (%)", " pp", low=0.0, high=100.0)
STEPS = Measure("steps", "steps to accuracy", scale_dependent=True, low=0.0)
LOG2_MARGIN = math.log2(1.25)


def _rule(claim, scale=Scale.DIFFERENCE, margin=0.5, setting="exp", seeds=5, role=Role.PRIMARY):
    measure = ACCURACY if scale is Scale.DIFFERENCE else STEPS
    return Rule(claim, setting, measure, scale, margin, seeds, role=role)


def synthetic_rows(n: int, seed: int = 0) -> list:
    """n made-up rows over every family and direction, a few not measurable."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        claim = claims.CLAIMS[i % len(claims.CLAIMS)]
        seeds = (5, 8, 20)[i % 3]
        base = 80 + rng.standard_normal(seeds)
        shift = rng.normal(0, 2) + 0.3 * rng.standard_normal(seeds)
        rule = _rule(claim, setting=f"exp{i}/setting-{i % 4}", seeds=seeds)
        gate = "a network compared does not train" if i % 11 == 5 else ""
        rows.append(measure_rule(rule, base + shift, base, gate_failed=gate))
    return decide_families(rows)


def _drawn(fig, label: str) -> tuple[float, float, float]:
    """(mean, low, high) drawn on the row whose y tick label is `label`."""
    ax = fig.axes[0]
    y = next(t.get_position()[1] for t in ax.get_yticklabels() if t.get_text() == label)
    markers = {s.marker for s in VERDICT_STYLES.values()}
    mean = next(
        line.get_xdata()[0]
        for line in ax.get_lines()
        if line.get_marker() in markers and line.get_ydata()[0] == y
    )
    (segment,) = [s for c in ax.collections for s in c.get_segments() if s[0][1] == y]
    return float(mean), float(min(segment[:, 0])), float(max(segment[:, 0]))


def _by_hand(d: np.ndarray, sign: float, margin: float) -> tuple[float, float, float]:
    """The paired t interval of d (95%), times sign / margin, ends in increasing order."""
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    ends = sorted((sign * (d.mean() - half) / margin, sign * (d.mean() + half) / margin))
    return sign * d.mean() / margin, ends[0], ends[1]


def test_a_lower_claim_is_flipped_and_a_higher_one_kept():
    """BN needs 30% fewer steps (LOWER, log2 ratio) and scores 2 points more (HIGHER,
    difference): both reproduce, so both must be drawn right of 0, in margins."""
    rng = np.random.default_rng(1)
    base_steps = 1000 * np.exp(0.1 * rng.standard_normal(6))
    bn_steps = 0.7 * base_steps * np.exp(0.05 * rng.standard_normal(6))
    lower = measure_rule(
        _rule(claims.BN_FEWER_STEPS, Scale.LOG2_RATIO, LOG2_MARGIN, "steps", 6),
        bn_steps,
        base_steps,
    )
    base_acc = 90 + rng.standard_normal(6)
    bn_acc = base_acc + 2 + 0.2 * rng.standard_normal(6)
    higher = measure_rule(_rule(claims.BN_FINAL_ACCURACY, seeds=6), bn_acc, base_acc)
    assert lower.verdict is higher.verdict is Verdict.REPRODUCED
    fig = draw_forest_plot([lower, higher])
    d_lower = np.log2(bn_steps / base_steps)  # negative: fewer steps
    for row, d, sign, margin in (
        (lower, d_lower, -1, LOG2_MARGIN),
        (higher, bn_acc - base_acc, 1, 0.5),
    ):
        expected = _by_hand(d, sign, margin)
        z = standardise(row)
        np.testing.assert_allclose((z.mean, z.low, z.high), expected, rtol=1e-9)
        np.testing.assert_allclose(z.seeds, sign * d / margin, rtol=1e-9)
        assert z.threshold == 0.0 and z.low > 0  # reproduced: right of 0
        drawn = _drawn(fig, f"{row.claim.id} @ {row.rule.setting}")
        np.testing.assert_allclose(drawn, expected, rtol=1e-9)


def test_similar_is_mirrored_so_its_mean_is_left_of_zero_and_not_lower_is_kept():
    rng = np.random.default_rng(2)
    base = 90 + rng.standard_normal(8)
    d = 0.1 + 0.05 * rng.standard_normal(8)  # a small positive effect
    similar = measure_rule(_rule(claims.GN_SMALL_BATCH_FLAT, seeds=8), base + d, base)
    not_lower = measure_rule(_rule(claims.PRECISE_BN_NOT_WORSE, seeds=8), base + d, base)
    z = standardise(similar)
    np.testing.assert_allclose((z.mean, z.low, z.high), _by_hand(d, -1, 0.5), rtol=1e-9)
    assert z.mean < 0 and z.threshold == -1.0
    assert similar.verdict is Verdict.REPRODUCED and z.low > -1 and z.high < 1
    z = standardise(not_lower)
    np.testing.assert_allclose((z.mean, z.low, z.high), _by_hand(d, 1, 0.5), rtol=1e-9)
    assert z.threshold == -1.0 and z.low > -1


def test_rows_without_an_interval_are_listed_as_not_measurable(tmp_path):
    rule = _rule(claims.BN_FINAL_ACCURACY, setting="gated")
    gated = measure_rule(rule, np.full(5, 12.0), np.full(5, 11.0), gate_failed="does not train")
    measured = measure_rule(_rule(claims.BN_FINAL_ACCURACY), 91 + np.arange(5.0), np.full(5, 90.0))
    assert standardise(gated) is None
    files = forest_plot(tmp_path / "forest", [gated, measured], hint="Look right of 0.")
    svg = files.svg.read_text()
    assert "not measurable: does not train" in svg and "bn-final-accuracy @ gated" in svg
    assert files.png.is_file() and files.hint == "Look right of 0."


def test_rows_are_grouped_under_their_family_in_the_families_order():
    rows = synthetic_rows(30)
    fig = draw_forest_plot(rows)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    headings = [t for t in labels if t in claims.FAMILIES]
    assert headings == [f for f in claims.FAMILIES if any(r.claim.family == f for r in rows)]
    for row in rows:  # under its own family's heading
        i = labels.index(f"{row.claim.id} @ {row.rule.setting}")
        assert [h for h in labels[:i] if h in claims.FAMILIES][-1] == row.claim.family


def test_a_secondary_row_says_so_and_an_empty_plot_is_refused():
    row = measure_rule(
        _rule(claims.BN_FINAL_ACCURACY, role=Role.SECONDARY), 91 + np.arange(5.0), np.full(5, 90.0)
    )
    fig = draw_forest_plot([row])
    assert "bn-final-accuracy @ exp (secondary)" in [
        t.get_text() for t in fig.axes[0].get_yticklabels()
    ]
    with pytest.raises(ValueError, match="rows"):
        draw_forest_plot([])
