"""The Santurkar diagnostics are computed on every row of their claim, reproduced or not, and
say what the numbers say: checked on synthetic per-seed values whose answer is known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bnlab.report import Role, Verdict, check_symmetric, mean_ci
from bnlab.reproduce.santurkar2018_landscape import landscape_row
from bnlab.reproduce.santurkar2018_rules import ics_rules, landscape_rules, noisy_rules
from bnlab.reproduce.santurkar2018_steps import every_step
from bnlab.reproduce.santurkar2018_why import (
    GRADIENT_SCALE,
    NOISE_SWEEP,
    TWIN_GRADIENT,
    agrees,
    noise_sweep,
    scale_share,
)

SEEDS, STEPS = 6, 4
RULES = landscape_rules("s/x", SEEDS, Role.PRIMARY)
CHANGE, BETA = RULES.both_train[1], RULES.both_train[2]


def _values(change_ratio: float, norm_ratio: float) -> dict:
    """Landscape values (seeds, T) per network where BN's gradient change is `change_ratio`
    times no BN's and its ||g|| `norm_ratio` times, with a little per-seed spread."""
    gen = np.random.default_rng(1)
    base_change = 2.0 + 0.1 * gen.random((SEEDS, STEPS))
    base_norm = 4.0 + 0.1 * gen.random((SEEDS, STEPS))
    jitter = 1.0 + 0.02 * gen.standard_normal((SEEDS, STEPS))
    change = {"batch": change_ratio * base_change * jitter, "none": base_change}
    norm = {"batch": norm_ratio * base_norm, "none": base_norm}
    relative = {n: change[n] / norm[n] for n in change}
    beta = {n: relative[n] / 0.1 for n in change}
    return {
        "grad_change_max": change,
        "grad_norm": norm,
        "relative": relative,
        "beta_smoothness": beta,
    }


NO_DIVERGENCE = {"BN": np.zeros(SEEDS, bool), "no BN": np.zeros(SEEDS, bool)}


def _row(values, rule=CHANGE, metric="grad_change_max"):
    return landscape_row(rule, metric, every_step(SEEDS, np.arange(STEPS)), values, NO_DIVERGENCE)


def test_a_reproduced_row_carries_the_same_diagnostics_as_a_failed_one():
    passed = _row(_values(change_ratio=0.25, norm_ratio=0.5))  # BN's change 4x smaller
    failed = _row(_values(change_ratio=4.0, norm_ratio=2.0))
    assert passed.verdict is Verdict.REPRODUCED and failed.verdict is Verdict.NOT_REPRODUCED
    for row in (passed, failed):
        assert [d.name for d in row.diagnostics] == [TWIN_GRADIENT, GRADIENT_SCALE]
        assert all(d.post_hoc and d.effect.n == SEEDS for d in row.diagnostics)
    twin, scale = passed.diagnostics
    assert twin.agrees is True and scale.agrees is True  # both below 0, as the claim
    assert twin.effect.mean == pytest.approx(-1.0, abs=0.05)  # relative change: 0.25 / 0.5
    assert scale.effect.mean == pytest.approx(-1.0, abs=1e-9)
    assert "accounts for -1.00 of -2.00 log2 units" in scale.detail
    assert "only part of it (50%)" in scale.detail
    assert failed.diagnostics[0].agrees is False
    check_symmetric([passed, failed])
    with pytest.raises(ValueError, match="a diagnostic must run on every row"):
        check_symmetric([passed, replace(failed, diagnostics=failed.diagnostics[:1])])


def test_the_gradient_scale_share_names_all_part_none_or_the_opposite():
    def est(mean: float):
        return mean_ci([mean - 0.01, mean, mean + 0.01])

    # the review's ICS case: ||g|| explains about 0.6 of 2.4-2.7 log2 units
    said = scale_share(est(-2.4), est(-3.6), est(-0.6), 0.5)
    assert "≈ 0.5 × scale-free -3.60 + ||g|| -0.60 (sum -2.40)" in said
    assert "accounts for -0.60 of -2.40 log2 units, only part of it (25%)" in said
    assert "about all of it (100%)" in scale_share(est(-2.0), est(0.0), est(-2.0), 1.0)
    assert "none of it: the gradient's scale points the other way" in scale_share(
        est(-2.0), est(-3.0), est(1.0), 1.0
    )
    assert "more than all of it (200%)" in scale_share(est(-1.0), est(1.0), est(-2.0), 1.0)
    assert scale_share(est(-1.0), None, None, 1.0).startswith("not measurable")


def test_beta_smoothness_divides_the_scale_out_and_says_so_on_every_row():
    for ratio in (0.25, 4.0):
        row = _row(_values(change_ratio=ratio, norm_ratio=2.0), BETA, "beta_smoothness")
        twin, scale = row.diagnostics
        assert twin.name == TWIN_GRADIENT and scale.name == GRADIENT_SCALE
        assert "accounts for none of β's ratio by construction" in scale.detail
        assert scale.effect.mean == pytest.approx(1.0)  # the ratio is still shown


def test_agreement_follows_the_rule_test():
    ics = ics_rules("s/x", SEEDS, Role.PRIMARY).l2  # NOT_LOWER, margin log2(1.25) = 0.32
    assert agrees(ics, mean_ci([-0.1, 0.0, 0.1])) is True  # above -margin: "not reduced"
    assert agrees(ics, mean_ci([-2.1, -2.0, -1.9])) is False
    assert agrees(ics, mean_ci([-1.0, 0.0, 1.0])) is None
    like = noisy_rules("s/x", SEEDS, Role.PRIMARY).like_bn  # SIMILAR within ±1 pp
    assert agrees(like, mean_ci([-0.2, 0.0, 0.2])) is True
    assert agrees(like, mean_ci([-22.0, -21.0, -20.0])) is False
    assert agrees(CHANGE, mean_ci([-1.1, -1.0, -0.9])) is True  # LOWER: the sign
    assert agrees(CHANGE, None) is None


def test_the_noise_sweep_recomputes_the_row_effect_at_each_scale():
    rules = noisy_rules("s/vgg", 3, Role.PRIMARY)
    bn = np.array([60.0, 59.0, 61.0])
    noisy = {
        1.0: np.array([38.0, 36.0, 40.0]),
        0.5: np.array([50.0, 48.0, 51.0]),
        0.25: np.array([59.6, 58.8, 60.7]),
    }
    diag = noise_sweep(rules.like_bn, (0.25, 0.5, 1.0), noisy, bn)
    assert diag.name == NOISE_SWEEP and diag.effect.mean == pytest.approx(-0.3)
    assert "-22.00 pp" in diag.detail and "at scale 1;" in diag.detail
    assert diag.detail.index("at scale 1;") < diag.detail.index("at scale 0.25")
    assert diag.agrees is True  # at scale 0.25, within the ±1 pp margin
    drift = noise_sweep(
        rules.less_stable,
        (0.5, 1.0),
        {1.0: np.array([0.4, 0.42, 0.41]), 0.5: np.array([0.2, 0.21, 0.2])},
        np.array([0.1, 0.1, 0.11]),
    )
    assert drift.effect.mean == pytest.approx(np.log2(0.2033 / 0.1033), abs=0.02)
    assert drift.unit == " log2" and drift.agrees is True
    missing = noise_sweep(rules.like_bn, (1.0,), {1.0: noisy[1.0]}, bn)  # present, by name
    assert missing.name == NOISE_SWEEP and missing.effect is None
    assert "no weaker noise" in missing.detail
