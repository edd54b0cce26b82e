"""Why a claim was not reproduced: each reason follows the measurement, so both branches of
every conditional reason are checked on synthetic inputs whose answer is known."""

from __future__ import annotations

import numpy as np

from bnlab.report import CLAIMS_BY_ID, ScorecardRow, Verdict, diff_ci, score
from bnlab.reproduce.santurkar2018_noise import NoiseSweep
from bnlab.reproduce.santurkar2018_why import (
    RELATIVE,
    SCALE_FREE_TWIN,
    noisy_bn_why,
    scale_reasons,
)
from bnlab.reproduce.scoring import grad_norm_why, scored

LEVEL = {"batch": (3.18, 1.87), "none": (2.67, 3.04)}


def test_grad_norm_cv_blamed_on_the_trend_when_the_trend_free_measure_is_lower_with_bn():
    jitter = {"batch": np.array([0.15, 0.16, 0.15]), "none": np.array([0.19, 0.18, 0.19])}
    why = grad_norm_why(jitter, LEVEL)
    assert why.startswith("Most likely the gradient norm's trend over training")
    assert "BN's goes 3.18 → 1.87, no BN's 2.67 → 3.04" in why
    assert "BN 0.153 vs no BN 0.187" in why and "difference -0.033" in why


def test_grad_norm_cv_unexplained_when_the_trend_free_measure_is_not_lower():
    higher = {"batch": np.array([0.48, 0.50, 0.47]), "none": np.array([0.31, 0.30, 0.33])}
    why = grad_norm_why(higher, LEVEL)
    assert why.startswith("Not the trend") and "BN 0.483 vs no BN 0.313" in why
    assert "varies more step to step" in why and why.endswith("no tested explanation.")
    assert "trend over training" not in why
    mixed = {"batch": np.array([0.2, 0.3, 0.1]), "none": np.array([0.25, 0.2, 0.2])}
    why = grad_norm_why(mixed, LEVEL)
    assert "do not differ clearly" in why and "varies more" not in why
    unmeasured = {"batch": np.full(3, np.nan), "none": np.full(3, np.nan)}
    assert grad_norm_why(unmeasured, LEVEL) == ""


def test_scored_keeps_the_reason_only_when_the_claim_fails():
    why = "measured reason"
    (failed,), _ = scored("bn-stable-grad-norm", "x", [0.3, 0.31, 0.32], [0.2, 0.2, 0.21], why=why)
    assert failed.verdict is Verdict.NOT_REPRODUCED and failed.why == why
    (held,), _ = scored("bn-stable-grad-norm", "x", [0.1, 0.11, 0.12], [0.2, 0.2, 0.21], why=why)
    assert held.verdict is Verdict.REPRODUCED and held.why == ""
    row = score(CLAIMS_BY_ID["bn-stable-grad-norm"], "x", diff_ci([0.3], [0.2]), why=why)
    assert row.verdict is Verdict.INCONCLUSIVE and row.why == ""


def _row(claim_id: str, bn, base):
    return score(CLAIMS_BY_ID[claim_id], "s/x", diff_ci(bn, base, paired=True))


LOWER = ([1.0, 1.1, 0.9], [2.0, 2.2, 2.1])  # BN clearly lower: a LOWER claim reproduces
HIGHER = ([2.0, 2.2, 2.1], [1.0, 1.1, 0.9])  # BN clearly higher: a LOWER claim fails


def test_an_l2_claim_is_put_on_the_gradient_scale_when_its_scale_free_twin_reproduces():
    rows = [
        _row("santurkar-gradient-predictiveness", *HIGHER),
        _row("santurkar-gradient-predictiveness-relative", *LOWER),
        _row("santurkar-loss-variation", *HIGHER),  # no twin: no reason
    ]
    out = scale_reasons(rows, {RELATIVE: "Gradient norm: log2 ratio 0.94."})
    why = out[0].why
    assert why.startswith("Most likely BN's change of the gradient's scale")
    assert CLAIMS_BY_ID[RELATIVE].statement in why and rows[1].effect_text in why
    assert why.endswith("Gradient norm: log2 ratio 0.94.")
    assert out[1].why == "" and out[2].why == ""  # reproduced; no twin


def test_no_scale_explanation_when_the_twin_fails_too():
    rows = [
        _row("santurkar-gradient-predictiveness", *HIGHER),
        _row("santurkar-gradient-predictiveness-relative", *HIGHER),
        _row("santurkar-beta-smoothness", *HIGHER),
    ]
    out = scale_reasons(rows, {RELATIVE: "never quoted"})
    for row in (out[0], out[2]):  # the relative row has no twin: no reason
        assert row.verdict is Verdict.NOT_REPRODUCED
        assert "does not explain it" in row.why  # no scale story where the twin fails
        assert "Most likely" not in row.why and "never quoted" not in row.why
    assert "not reproduced in this setting either (not reproduced)" in out[0].why and out[
        0
    ].why.endswith("no tested explanation.")
    assert out[1].why == ""  # the relative row has no twin of its own
    assert "relative to ||g|| is not reproduced either" in out[2].why


def test_ics_l2_reason_and_beta_which_the_scale_cannot_explain():
    ics, cosine = "santurkar-ics-not-reduced", "santurkar-ics-cosine-not-reduced"
    rows = [
        _row(ics, [-3.0, -2.8, -2.9], [0.0, 0.0, 0.0]),  # log2 ratio far below -0.32: fails
        _row(cosine, [0.101, 0.099, 0.1], [0.1, 0.1, 0.1]),  # within ±0.05: reproduced
        _row("santurkar-beta-smoothness", *HIGHER),
        _row("santurkar-gradient-predictiveness-relative", *LOWER),
    ]
    out = scale_reasons(rows, {SCALE_FREE_TWIN[ics]: "Per layer: the figures."})
    assert out[0].why.startswith("Most likely BN's change of the gradient's scale")
    assert out[0].why.endswith("Per layer: the figures.")
    beta = out[2].why
    assert "does not explain it" in beta and "is reproduced in the same setting" in beta
    assert beta.endswith("no tested explanation.") and "Most likely" not in beta


NOISE = {"mean_max": 0.5, "std_min": 0.5, "std_max": 1.5}


def test_noisy_bn_reason_needs_noisy_bn_worse_and_fitting_worse():
    worse = score(
        CLAIMS_BY_ID["santurkar-noisy-bn-like-bn"],
        "n/vgg",
        diff_ci([38.0, 36.0, 40.0], [60.0, 59.0, 61.0], paired=True),
    )
    fits_worse = {
        "batch": np.array([0.006, 0.005, 0.007]),
        "batch-noisy": np.array([1.4, 1.5, 1.45]),
    }
    why = noisy_bn_why(worse, fits_worse, NOISE)
    assert why.startswith("Most likely our noise is stronger than the paper's")
    assert "U(0.5, 1.5)" in why and "U(-0.5, 0.5)" in why and "1.450 ±" in why
    assert why.endswith("no noise-strength sweep was run, so this is not tested.")
    fits_as_well = {"batch": np.array([1.4, 1.5, 1.45]), "batch-noisy": np.array([0.1, 0.1, 0.1])}
    assert noisy_bn_why(worse, fits_as_well, NOISE) == ""
    better = score(
        CLAIMS_BY_ID["santurkar-noisy-bn-like-bn"],
        "n/vgg",
        diff_ci([64.0, 63.0, 65.0], [60.0, 59.0, 61.0], paired=True),
    )
    assert better.verdict is Verdict.NOT_REPRODUCED
    assert noisy_bn_why(better, fits_worse, NOISE) == ""


def _sweep(at_quarter: list[float], at_half: list[float]) -> NoiseSweep:
    """BN at 60 pp, BN + noise at 38 pp at full noise (scale 1), as the `vgg` setting."""
    return NoiseSweep(
        (0.25, 0.5, 1.0),
        (np.array(at_quarter), np.array(at_half), np.array([38.0, 36.0, 40.0])),
        bn=np.array([60.0, 59.0, 61.0]),
        none=np.array([45.0, 44.0, 46.0]),
    )


def _worse() -> ScorecardRow:
    return score(
        CLAIMS_BY_ID["santurkar-noisy-bn-like-bn"],
        "n/vgg",
        diff_ci([38.0, 36.0, 40.0], [60.0, 59.0, 61.0], paired=True),
    )


FITS_WORSE = {"batch": np.array([0.006, 0.005, 0.007]), "batch-noisy": np.array([1.4, 1.5, 1.45])}


def test_noisy_bn_reason_names_noise_strength_when_weaker_noise_closes_the_gap():
    why = noisy_bn_why(_worse(), FITS_WORSE, NOISE, _sweep([59.5, 58.5, 60.5], [50.0, 48.0, 51.0]))
    # gaps to BN, paired: -22.0 at scale 1, -10.33 at 0.5, -0.50 at 0.25; 0.25 - 1 = +21.5
    assert "-22.00 pp ±" in why and "at scale 1;" in why and "-0.50 pp ± 0.00" in why
    assert "scale 0.25 minus scale 1 is 21.50 pp ±" in why
    assert "The gap shrinks as the noise weakens" in why
    assert "reaches the claim's ±1 pp margin, so the tested cause is our noise's strength" in why
    assert "Most likely" not in why
    # weaker noise helps, but a gap remains well outside the ±1 pp margin
    why = noisy_bn_why(_worse(), FITS_WORSE, NOISE, _sweep([50.0, 48.0, 51.0], [45.0, 44.0, 46.0]))
    assert "The gap shrinks" in why and "a gap to BN remains at scale 0.25" in why
    assert "explains part of it (tested), not all" in why


def test_noisy_bn_reason_rules_out_noise_strength_when_weaker_noise_does_not_help():
    same = [38.5, 35.0, 40.5]  # scale 0.25 minus scale 1: +0.5, -1, +0.5: interval spans 0
    why = noisy_bn_why(_worse(), FITS_WORSE, NOISE, _sweep(same, same))
    assert "Weaker noise does not close the gap" in why
    assert why.endswith("does not explain it; no tested explanation.")
    assert "tested cause" not in why
    # a sweep without any weaker scale tests nothing: the untested reason stays
    only_full = NoiseSweep((1.0,), (np.array([38.0, 36.0, 40.0]),), np.ones(3), np.ones(3))
    assert noisy_bn_why(_worse(), FITS_WORSE, NOISE, only_full).endswith("so this is not tested.")


def test_grad_norm_ratio_counts_the_seeds_it_leaves_out():
    from bnlab.reproduce.santurkar2018_why import grad_norm_ratio

    bn, base = np.array([1.0, 1.2, 0.9, 1.1]), np.array([0.5, 0.6, 0.4, 0.55])
    whole = grad_norm_ratio(bn, base)
    assert "n=4" in whole and "left out" not in whole
    base[1] = np.nan  # a diverged seed
    assert "n=3" in grad_norm_ratio(bn, base)
    assert "(1 of 4 seeds not measurable, left out)" in grad_norm_ratio(bn, base)
