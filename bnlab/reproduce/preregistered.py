"""What the experiments' decision rules share: the measures, the gates and the seed policy.

Every experiment declares its rules (`bnlab.report.Rule`) next to its code, from these
pieces, as a function of the number of seeds it is run with; `bnlab reproduce` records them
before the first training step (`bnlab.report.registration`).

Seed policy, fixed before the runs it governs (the power rule). The previous full run, with
5 seeds everywhere, is the pilot: its intervals gave each effect's per-seed spread.

- Networks without convolutions (the MNIST MLPs, the deep linear net) train as stacks of many
  members at little cost: MLP_SEEDS = 20, so that an effect of half a standard deviation of
  its per-seed spread is found with about 80% power (a one-sided paired t-test at 0.025
  needs n = 34 for d = 0.5 and n = 10 for d = 1; 20 seeds find d = 0.66).
- Convolutional networks cost an hour or more per experiment on 2 cores: CONV_SEEDS = 5,
  except where the pilot showed an undecided effect that a few more seeds would decide
  (`POWER_SEEDS`: n for 80% power at the pilot's own effect size, computed with
  statsmodels' `TTestPower`, used when it is at most 10).

The confirmatory replication (`CONFIRMATION`), registered after the second full run and
before its own runs. That run, 5 seeds for conv nets and 20 for MLPs, left 12 primary verdicts
inconclusive; its planning table (`bnlab.report.planning`: the seeds a new run needs for 80%
power at the observed effect, at the family's strictest Holm level) put six of them within
reach: train-test-stats' precise vs EMA statistics 15 seeds and batch statistics 38;
small-batch's GN beats BN 16 and BN's error grows 21; noisy BN beats no BN 23; the landscape's
MNIST loss variation 58. Those experiments (every setting of each, so that the rows keep
their gates and diagnostics) are re-run with the planned seeds rounded up, on new seeds that
start at CONFIRMATION_FIRST_SEED: the data order, the initialization and BN's noise all follow
a member's seed, so no run shares anything with the earlier runs, and none is pooled with
them. The other six inconclusive rows need 133 seeds or more (or sit on their margin) and are
not re-run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from bnlab.report import Gate, Measure, Role, Rule, Scale, claims

MLP_SEEDS = 20
CONV_SEEDS = 5
CHANCE = 10.0  # % test accuracy of a guess among 10 classes
TRAINS_ABOVE_CHANCE = 10.0  # percentage points above chance that count as "trains"

# ---- measures: what one network's run is summarized by (units; scale-dependent or not)
FINAL_ACCURACY = Measure(
    "final-test-accuracy", "final test accuracy (%)", " pp", low=0.0, high=100.0
)
FINAL_ERROR = Measure("final-test-error", "final test error (%)", " pp", low=0.0, high=100.0)
FINAL_TRAIN_ACCURACY = Measure(
    "final-train-accuracy",
    "training accuracy over the last 100 steps, as trained (%)",
    " pp",
    low=0.0,
    high=100.0,
)
STEPS_TO_ACCURACY = Measure(
    "steps-to-accuracy",
    "training steps to the lowest peak test accuracy of any run",
    scale_dependent=True,
    low=0.0,
)
PERCENTILE_DRIFT = Measure(
    "percentile-drift",
    "percentile drift: mean change of the 15/50/85th percentiles per evaluation interval, "
    "in units of their 15-85 spread",
    scale_dependent=True,
    low=0.0,
)
SHAPE_DRIFT = Measure(
    "shape-drift",
    "shape drift of the normalized input: mean change per evaluation interval of the "
    "5/15/85/95th percentiles' distance from the median, in units of the 15-85 spread",
    scale_dependent=True,
    low=0.0,
)
HIGHEST_LR = Measure(
    "highest-lr", "log2 of the highest learning rate of the grid that trains", " doublings"
)
INIT_RANGE = Measure(
    "init-range",
    "range (max − min) of final test accuracy across init scales (pp)",
    " pp",
    low=0.0,
    high=100.0,
)
LOSS_JITTER = Measure(
    "loss-jitter",
    "relative loss jitter: std of the step-to-step change of log(training loss)",
    scale_dependent=True,
    low=0.0,
)
GRAD_NORM_CV = Measure(
    "grad-norm-cv", "coefficient of variation of the gradient norm", scale_dependent=True, low=0
)
ICS_L2 = Measure(
    "ics-l2", "ICS ℓ2 difference ||G − G'|| (paper's Def. 2.1)", scale_dependent=True, low=0
)
ICS_COSINE = Measure("ics-cosine", "ICS as 1 − cos(G, G')", scale_dependent=True, low=0)
LOSS_VARIATION = Measure(
    "loss-variation",
    "loss landscape variation (max − min loss along the gradient)",
    scale_dependent=True,
    low=0,
)
GRADIENT_CHANGE = Measure(
    "gradient-change",
    "ℓ2 gradient change along the gradient (gradient predictiveness)",
    scale_dependent=True,
    low=0,
)
BETA_SMOOTHNESS = Measure(
    "beta-smoothness",
    "effective β-smoothness (max gradient change / distance moved)",
    scale_dependent=True,
    low=0,
)

# ---- gates: what the data must show before a setting can answer a claim
TRAINS = Gate(
    "trains",
    f"every network compared reaches a mean final test accuracy at least "
    f"{TRAINS_ABOVE_CHANCE:g} points above chance ({CHANCE:g}%)",
)
CONTROL_TRAINS = Gate(
    "control-trains",
    f"the network without normalization reaches a mean final test accuracy at least "
    f"{TRAINS_ABOVE_CHANCE:g} points above chance at every batch size compared",
)
PROBED_BOTH_TRAIN = Gate(
    "probed-both-train",
    f"measured at the probed steps where both networks' mean test accuracy is at least "
    f"{TRAINS_ABOVE_CHANCE:g} points above chance; at least half of the probed steps qualify",
)

# The pilot's undecided conv effects that at most 10 seeds decide with 80% power: the
# Fashion-MNIST ConvMLP's final accuracy, +1.81 ± 1.87 pp over 5 seeds (d = 1.2, n = 7.6).
# (Others need more: the VGG's ICS ℓ2, d = 0.82, n = 14; GN flat, d = 0.28, n = 104.)
POWER_SEEDS = {"matrix/fashion-mnist/convmlp": 8}

# The confirmatory replication (see the module docstring): setting -> seeds; keys are an
# experiment's name (every setting) or "experiment/setting".
CONFIRMATION_FIRST_SEED = 1000
CONFIRMATION = {
    "train-test-stats": 40,
    "small-batch": 24,
    "santurkar2018-noisy-bn": 24,
    "santurkar2018-landscape/mnist": 60,
}

LOG2_MARGIN = math.log2(1.25)  # "25% larger or smaller": the margin on every ratio scale
ACCURACY_MARGIN = 0.5  # percentage points of test accuracy: half a point is negligible


def trains_gate(*mean_accuracies: float) -> str:
    """TRAINS as a check: '' if every network's mean final test accuracy (%) is at least
    TRAINS_ABOVE_CHANCE above chance, else the reason naming the lowest."""
    low = min(mean_accuracies)
    if math.isfinite(low) and low >= CHANCE + TRAINS_ABOVE_CHANCE:
        return ""
    return (
        f"a network compared does not train: mean final test accuracy {low:.1f}% "
        f"< {CHANCE + TRAINS_ABOVE_CHANCE:g}% (chance + {TRAINS_ABOVE_CHANCE:g})"
    )


def seeds_of(seeds: int | Mapping[str, int], setting: str) -> int:
    """The seeds of `setting`: one number for every setting, or the plan's per setting."""
    return seeds if isinstance(seeds, int) else seeds[setting]


def confirmation(setting: str) -> int | None:
    """The confirmatory replication's seeds for `setting` ("experiment" or
    "experiment/setting"), or None if it is not part of it."""
    name = setting.split("/")[0]
    return CONFIRMATION.get(setting, CONFIRMATION.get(name))


def first_seed(setting: str) -> int:
    """The seed of member 0 of `setting`'s networks: CONFIRMATION_FIRST_SEED in the
    confirmatory replication, 0 elsewhere."""
    return CONFIRMATION_FIRST_SEED if confirmation(setting) is not None else 0


def confirmation_note(setting: str) -> str:
    """What the report says about a setting of the confirmatory replication ('' elsewhere)."""
    if confirmation(setting) is None:
        return ""
    return (
        f"A confirmatory replication: {confirmation(setting)} new seeds (from "
        f"{CONFIRMATION_FIRST_SEED}), registered before these runs because the previous full "
        "run (5 seeds for conv nets, 20 for the MNIST net, from seed 0) left a primary verdict "
        "here inconclusive and its planning table said this many seeds would decide it. The "
        "earlier runs are not pooled with these; their verdicts are superseded, not combined."
    )


# ---- the rules every training comparison shares (BN vs no BN, paired by seed)


def accuracy_rule(setting: str, seeds: int, role: Role = Role.PRIMARY) -> Rule:
    return Rule(
        claims.BN_FINAL_ACCURACY,
        setting,
        FINAL_ACCURACY,
        Scale.DIFFERENCE,
        ACCURACY_MARGIN,
        seeds,
        gates=(TRAINS,),
        role=role,
    )


def steps_rule(setting: str, seeds: int, role: Role = Role.PRIMARY) -> Rule:
    return Rule(
        claims.BN_FEWER_STEPS,
        setting,
        STEPS_TO_ACCURACY,
        Scale.LOG2_RATIO,
        LOG2_MARGIN,
        seeds,
        gates=(TRAINS,),
        role=role,
    )


def smoothness_rule(setting: str, seeds: int, role: Role = Role.PRIMARY) -> Rule:
    return Rule(
        claims.BN_SMOOTHER_LOSS,
        setting,
        LOSS_JITTER,
        Scale.LOG2_RATIO,
        LOG2_MARGIN,
        seeds,
        gates=(TRAINS,),
        role=role,
    )


def grad_cv_rule(setting: str, seeds: int, role: Role = Role.PRIMARY) -> Rule:
    return Rule(
        claims.BN_STABLE_GRAD_NORM,
        setting,
        GRAD_NORM_CV,
        Scale.LOG2_RATIO,
        LOG2_MARGIN,
        seeds,
        gates=(TRAINS,),
        role=role,
    )
