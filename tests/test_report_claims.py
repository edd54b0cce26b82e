"""The verdict rule on synthetic effects whose answer is known, and the predefined claims."""

from __future__ import annotations

import math

import pytest

from bnlab.report.claims import (
    CLAIMS,
    CLAIMS_BY_ID,
    Claim,
    Direction,
    Verdict,
    explained,
    judge,
    score,
)
from bnlab.report.stats import Estimate, diff_ci

R, N, I = Verdict.REPRODUCED, Verdict.NOT_REPRODUCED, Verdict.INCONCLUSIVE


def _claim(direction: Direction, margin: float | None = None) -> Claim:
    return Claim("t", "statement", "source", direction, "ref", "measure", margin=margin)


def _effect(low: float, high: float, n: int = 5) -> Estimate:
    return Estimate((low + high) / 2, low, high, n, "synthetic")


@pytest.mark.parametrize(
    ("direction", "margin", "low", "high", "expected"),
    [
        (Direction.HIGHER, None, 1.0, 3.0, R),  # clear positive
        (Direction.HIGHER, None, -3.0, -1.0, N),  # clear negative
        (Direction.HIGHER, None, -1.0, 2.0, I),  # straddles zero
        (Direction.HIGHER, 0.5, -0.2, 0.3, N),  # straddles zero but inside the margin
        (Direction.HIGHER, 0.5, -0.2, 0.7, I),  # straddles zero, reaches past the margin
        (Direction.HIGHER, 0.5, 0.1, 0.3, R),  # small but clearly there: excluding zero wins
        (Direction.LOWER, None, -3.0, -1.0, R),
        (Direction.LOWER, None, 1.0, 3.0, N),
        (Direction.LOWER, None, -1.0, 1.0, I),
        (Direction.LOWER, 2.0, -1.0, 1.0, N),
        (Direction.SIMILAR, 1.0, -0.5, 0.8, R),
        (Direction.SIMILAR, 1.0, 1.5, 3.0, N),
        (Direction.SIMILAR, 1.0, -3.0, -1.2, N),
        (Direction.SIMILAR, 1.0, 0.5, 1.5, I),
        (Direction.NOT_LOWER, 0.3, -0.2, 2.0, R),  # similar or larger
        (Direction.NOT_LOWER, 0.3, -2.0, -0.5, N),  # clearly smaller than the margin allows
        (Direction.NOT_LOWER, 0.3, -0.6, 0.1, I),
        (Direction.NOT_LOWER, None, 0.0, 1.0, R),
    ],
)
def test_verdict_rule(direction, margin, low, high, expected):
    assert judge(_claim(direction, margin), _effect(low, high)) is expected


@pytest.mark.parametrize("direction", list(Direction))
def test_single_run_is_always_inconclusive(direction):
    lone = Estimate(5.0, math.nan, math.nan, 1, "no CI: n=1")
    assert judge(_claim(direction, margin=1.0), lone) is I


def test_verdicts_from_seeds_end_to_end():
    claim = CLAIMS_BY_ID["bn-final-accuracy"]
    bn, base = [98.1, 98.3, 98.0, 98.2, 98.4], [95.0, 94.7, 95.3, 94.9, 95.1]
    assert judge(claim, diff_ci(bn, base, paired=True)) is R
    assert judge(claim, diff_ci(base, bn, paired=True)) is N
    noisy = [97.0, 98.9, 96.5, 99.5, 97.8]
    assert judge(claim, diff_ci(noisy, bn, paired=True)) is I
    row = score(claim, "ioffe2015-mnist", diff_ci(bn, base, paired=True))
    # Differences 3.1, 3.6, 2.7, 3.3, 3.3: mean 3.2, s^2 = 0.44 / 4, half = 2.776 * s / sqrt(5)
    # t = 3.2 / (0.166 / sqrt(5)) = 21.6 on 4 df: p about 3e-5
    assert row.verdict is R and row.effect_text == "3.20 pp ± 0.41 (95% CI, n=5), p < 0.0001"


def test_seeds_left_out_are_counted_and_more_than_half_make_it_inconclusive():
    claim = CLAIMS_BY_ID["bn-final-accuracy"]
    clear = _effect(1.0, 3.0, n=2)
    half = score(claim, "x", clear, seeds=4, diverged=(("BN", 0), ("no BN", 2)), left_out=2)
    assert half.verdict is R  # 2 of 4 left out: not more than half, the interval decides
    assert half.divergence_text == "no BN diverged in 2/4 seeds; 2/4 seeds not measurable, left out"
    most = score(claim, "x", _effect(1.0, 3.0, n=2), seeds=5, left_out=3)
    assert most.verdict is I and most.seeds == 5
    none = score(claim, "x", Estimate(math.nan, math.nan, math.nan, 0, "none"), seeds=3, left_out=3)
    assert none.verdict is I and none.effect_text == "not measurable"


def test_claim_validation():
    with pytest.raises(ValueError, match="margin"):
        _claim(Direction.SIMILAR)
    with pytest.raises(ValueError, match="margin"):
        _claim(Direction.HIGHER, margin=-1.0)


def test_predefined_claims_cover_both_issues():
    assert len(CLAIMS_BY_ID) == len(CLAIMS)  # ids are unique
    for claim in CLAIMS:
        assert claim.statement and claim.source and claim.reference and claim.measure
    sources = " ".join(c.source for c in CLAIMS)
    assert "Ioffe & Szegedy 2015" in sources and "Santurkar et al. 2018" in sources
    for required in (
        "bn-final-accuracy",
        "bn-fewer-steps",
        "bn-percentile-stability",
        "bn-higher-lr",
        "bn-init-insensitive",
        "bn-smoother-loss",
        "bn-stable-grad-norm",
        "santurkar-ics-not-reduced",
        "santurkar-noisy-bn-like-bn",
        "santurkar-noisy-bn-beats-none",
        "santurkar-beta-smoothness",
    ):
        assert required in CLAIMS_BY_ID
    acc = CLAIMS_BY_ID["bn-final-accuracy"]
    assert "98.15%" in acc.reference_for("ioffe2015-mnist")  # the seed's number, shown


def test_a_source_number_is_shown_only_in_its_own_setting():
    """The seed's MNIST number is not cited against Fashion-MNIST, nor its CIFAR-10 number
    against MNIST; a setting without one says so and names where the numbers belong."""
    acc, steps = CLAIMS_BY_ID["bn-final-accuracy"], CLAIMS_BY_ID["bn-fewer-steps"]
    fashion = acc.reference_for("matrix (fashion-mnist / mlp)")
    assert "98.15" not in fashion and "85.23" not in fashion
    assert "no source number for this setting" in fashion and "ioffe2015-mnist" in fashion
    assert "85.23%" in acc.reference_for("cifar10-cnn")
    assert "98.15" not in acc.reference_for("cifar10-cnn")
    mnist = steps.reference_for("ioffe2015-mnist")
    assert "74.96" not in mnist and "CIFAR" not in mnist.split(" (the seeds'")[0]
    assert "74.96%" in steps.reference_for("cifar10-cnn")
    row = score(acc, "matrix (cifar10 / mlp)", _effect(1.0, 2.0))
    assert row.reference == acc.reference_for("matrix (cifar10 / mlp)")
    from bnlab.reproduce import experiments

    for claim in CLAIMS:  # every setting a number is filed under is a registered experiment
        for where, _ in claim.numbers:
            assert where in experiments()


def test_a_reason_is_kept_only_on_a_not_reproduced_row():
    claim = CLAIMS_BY_ID["bn-final-accuracy"]  # HIGHER, margin 0.2
    failed = score(claim, "x", _effect(-3.0, -1.0), why="measured reason")
    assert failed.verdict is Verdict.NOT_REPRODUCED and failed.why == "measured reason"
    for effect in (_effect(1.0, 3.0), _effect(-1.0, 3.0)):  # reproduced, inconclusive
        row = score(claim, "x", effect, why="measured reason")
        assert row.why == "" and explained(row, "later reason") is row
    assert explained(failed, "later reason").why == "later reason"
