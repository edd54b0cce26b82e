"""The decision rules of the Santurkar et al. 2018 experiments, fixed before their runs.

A setting's rules follow from what it measures and its role (`santurkar2018.Setting`); the
setting's name, `<experiment>/<setting>`, is the rule's setting. Every effect is per seed
and paired (member k of every network shares seed k):

- Landscape (Sec. 3.1, Fig. 4): loss variation, ℓ2 gradient change and effective
  β-smoothness, each log2(BN / no BN) of the seed's mean over the probed steps where both
  networks train (PROBED_BOTH_TRAIN), LOWER, margin log2(1.25). Beside them, EXPLORATORY
  rows (shown, never counted), added when a review found the verdicts depended on that gate
  and on how far each network had fitted its data: the same three over every probed step
  (`/all-steps`) and at matched training loss (`/matched-loss`, `santurkar2018_steps`), and
  the loss variation divided by the loss at the probed step (`/per-loss`).
- ICS (Sec. 2.2, Fig. 5): the ℓ2 form and 1 − cos(G, G'), both log2(BN / no BN), NOT_LOWER
  (non-inferiority at −log2(1.25)). On the difference scale a margin of 0.05 on 1 − cos was
  larger than the deep linear baseline's whole value (about 0.04), so "not reduced" passed
  while BN brought it to about 0; a ratio's margin means 25% in every setting.
- Noisy BN (Sec. 2.1, Fig. 2): the claims are about training, so the primary measure is the
  training accuracy over the last 100 steps as trained; test accuracy after re-estimating
  the running statistics with the noise off (`santurkar2018_noise_free`) is SECONDARY
  (`/noise-free-test`), and the percentile drift is a log2 ratio.

Every rule carries NO_DIVERGENCE: a seed that diverged has no value, so it makes the row not
measurable and the divergence counts are the outcome (never a mean over the survivors).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bnlab.report import Gate, Measure, Role, Rule, Scale, claims
from bnlab.reproduce import preregistered as pre

ALL_STEPS, MATCHED, PER_LOSS, NOISE_FREE = (
    "all-steps",
    "matched-loss",
    "per-loss",
    "noise-free-test",
)
MATCH_TOLERANCE = 0.10  # training losses within 10% (relative) count as matched
LIKE_BN_MARGIN = 1.0  # pp of training accuracy: "about as well as BN" is within one point

NO_DIVERGENCE = Gate(
    "no-divergence",
    "no seed of either network diverged (training loss non-finite): a diverged seed has no "
    "value for the measure, so the row is not measurable and the divergence counts, with "
    "their Clopper-Pearson intervals, are the outcome",
)
MATCHED_LOSS = Gate(
    "matched-loss",
    f"every seed has a BN probed step whose training loss is within {MATCH_TOLERANCE:.0%} of "
    "the same seed's no-BN probed step of nearest training loss",
)

LOSS_VARIATION_PER_LOSS = Measure(
    "loss-variation-per-loss",
    "loss variation along the gradient divided by the loss at the probed step",
    scale_dependent=True,
    low=0,
)
NOISE_FREE_TEST_ACCURACY = Measure(
    "noise-free-test-accuracy",
    "final test accuracy with every BN layer's running statistics re-estimated after "
    "training with the noise off (precise BN) (%)",
    " pp",
    low=0.0,
    high=100.0,
)

LANDSCAPE = (
    (claims.SANTURKAR_LOSS_VARIATION, pre.LOSS_VARIATION),
    (claims.SANTURKAR_GRADIENT_PREDICTIVENESS, pre.GRADIENT_CHANGE),
    (claims.SANTURKAR_BETA_SMOOTHNESS, pre.BETA_SMOOTHNESS),
)


def _ratio(claim, setting: str, measure: Measure, seeds: int, role: Role, gates) -> Rule:
    return Rule(
        claim,
        setting,
        measure,
        Scale.LOG2_RATIO,
        pre.LOG2_MARGIN,
        seeds,
        gates=(*gates, NO_DIVERGENCE),
        role=role,
    )


@dataclass(frozen=True)
class LandscapeRules:
    """One setting's landscape rules, each triple ordered as `LANDSCAPE`."""

    both_train: tuple[Rule, Rule, Rule]  # the declared rules (the setting's role)
    all_steps: tuple[Rule, Rule, Rule]  # exploratory: every probed step
    matched: tuple[Rule, Rule, Rule]  # exploratory: at matched training loss
    per_loss: Rule  # exploratory: loss variation / loss, at the declared steps

    def all(self) -> tuple[Rule, ...]:
        return (*self.both_train, *self.all_steps, *self.matched, self.per_loss)


def landscape_rules(setting: str, seeds: int, role: Role) -> LandscapeRules:
    both, ex = (pre.PROBED_BOTH_TRAIN,), Role.EXPLORATORY
    return LandscapeRules(
        tuple(_ratio(c, setting, m, seeds, role, both) for c, m in LANDSCAPE),
        tuple(_ratio(c, f"{setting}/{ALL_STEPS}", m, seeds, ex, ()) for c, m in LANDSCAPE),
        tuple(
            _ratio(c, f"{setting}/{MATCHED}", m, seeds, ex, (MATCHED_LOSS,)) for c, m in LANDSCAPE
        ),
        _ratio(
            claims.SANTURKAR_LOSS_VARIATION,
            f"{setting}/{PER_LOSS}",
            LOSS_VARIATION_PER_LOSS,
            seeds,
            ex,
            both,
        ),
    )


@dataclass(frozen=True)
class IcsRules:
    l2: Rule
    cosine: Rule

    def all(self) -> tuple[Rule, ...]:
        return (self.l2, self.cosine)


def ics_rules(setting: str, seeds: int, role: Role) -> IcsRules:
    both = (pre.PROBED_BOTH_TRAIN,)
    return IcsRules(
        _ratio(claims.SANTURKAR_ICS_NOT_REDUCED, setting, pre.ICS_L2, seeds, role, both),
        _ratio(claims.SANTURKAR_ICS_COSINE_NOT_REDUCED, setting, pre.ICS_COSINE, seeds, role, both),
    )


@dataclass(frozen=True)
class NoisyRules:
    like_bn: Rule  # training accuracy, BN + noise − BN
    beats_none: Rule  # training accuracy, BN + noise − no BN
    less_stable: Rule  # percentile drift, log2(BN + noise / BN)
    like_bn_test: Rule  # secondary: noise-free test accuracy
    beats_none_test: Rule

    def all(self) -> tuple[Rule, ...]:
        return (
            self.like_bn,
            self.beats_none,
            self.less_stable,
            self.like_bn_test,
            self.beats_none_test,
        )


NOISY = "BN + noise"  # the treatment of every noisy-BN rule (`common.NORM_LABELS`)


def noisy_rules(setting: str, seeds: int, role: Role) -> NoisyRules:
    gates = (pre.TRAINS, NO_DIVERGENCE)

    def accuracy(claim, margin: float, comparison: str) -> Rule:
        return Rule(
            claim,
            setting,
            pre.FINAL_TRAIN_ACCURACY,
            Scale.DIFFERENCE,
            margin,
            seeds,
            gates=gates,
            role=role,
            comparison=comparison,
            treatment=NOISY,
        )

    like = accuracy(claims.SANTURKAR_NOISY_BN_LIKE_BN, LIKE_BN_MARGIN, "BN")
    beats = accuracy(claims.SANTURKAR_NOISY_BN_BEATS_NONE, pre.ACCURACY_MARGIN, "no BN")
    stable = replace(
        _ratio(
            claims.SANTURKAR_NOISY_BN_LESS_STABLE, setting, pre.PERCENTILE_DRIFT, seeds, role, ()
        ),
        gates=gates,
        comparison="BN",
        treatment=NOISY,
        digits=3,
    )
    test = dict(
        setting=f"{setting}/{NOISE_FREE}", measure=NOISE_FREE_TEST_ACCURACY, role=Role.SECONDARY
    )
    return NoisyRules(like, beats, stable, replace(like, **test), replace(beats, **test))
