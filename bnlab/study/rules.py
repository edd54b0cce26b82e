"""A study's claims as the lab's pre-registered decision rules (`bnlab.report.rules.Rule`).

Each `spec.Claim` becomes one `Rule`, built from the stored declaration (so the run that
registers the rules and the report that applies them build the same ones):

- the measure: the claim's metric, final per seed (`bnlab.study.analyze`);
- the scale: accuracies on the difference scale in percentage points; losses and gradient
  norms, whose size depends on the model and data, as log2(variant / than) per seed;
- the margin: the claim's, converted to that scale (an accuracy margin of 0.01 is 1 pp; a
  loss margin of 0.25 is "25% larger or smaller", log2(1.25)), else the lab's defaults;
- the gate `TRAINS`: every variant compared trains (`bnlab.study.controls`);
- the family: the study's own. A study's claims share Holm's correction, apart from the
  lab's sources.

`register` records them in DIR/preregistration.json (`bnlab.report.registration`) before
the first training step, as `bnlab reproduce` does for its experiments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bnlab.errors import BnlabError
from bnlab.report import Gate, Measure, Rule, Scale, registration
from bnlab.report.claims import Claim, Direction
from bnlab.report.rules import RATIO_MARGIN

__all__ = ["MEASURES", "TRAINS", "StudyClaim", "register", "study_rules"]

ACCURACY_MARGIN = 0.5  # pp, as the lab's accuracy rules: half a point is negligible
CHANCE_POINTS = 5.0  # pp above chance (1/classes) a mean final training accuracy must clear

_ACCURACY = {"low": 0.0, "high": 100.0, "unit": " pp"}
MEASURES = {
    "test_accuracy": Measure("test-accuracy", "final test accuracy (%)", **_ACCURACY),
    "train_accuracy": Measure(
        "train-accuracy", "training accuracy, last 10% of the logged steps (%)", **_ACCURACY
    ),
    "test_loss": Measure("test-loss", "final test loss", scale_dependent=True, low=0.0),
    "train_loss": Measure(
        "train-loss", "training loss, last 10% of the logged steps", scale_dependent=True, low=0
    ),
    "grad_norm": Measure(
        "grad-norm", "gradient norm, last 10% of the logged steps", scale_dependent=True, low=0
    ),
}
# The factor from a metric's stored values to its measure's (accuracies are fractions).
FACTORS = {"test_accuracy": 100.0, "train_accuracy": 100.0}

TRAINS = Gate(
    "study-trains",
    f"every variant compared trains: its mean final training accuracy is more than "
    f"{CHANCE_POINTS:g} points above chance (1 / classes) and its mean final training loss "
    "is below its mean loss at the first logged step",
)


@dataclass(frozen=True)
class StudyClaim(Claim):
    """A study's own claim: the lab's `Claim` in the study's own family (the lab's check
    that a family is one of its sources does not apply)."""

    def __post_init__(self):
        if not self.family.startswith("study "):
            raise ValueError(f"StudyClaim {self.id}: family {self.family!r}, expected 'study …'")


def _margin(claim: dict) -> tuple[Scale, float]:
    """The claim's scale and its margin on that scale (see the module docstring)."""
    measure, margin = MEASURES[claim["metric"]], claim["margin"]
    if measure.scale_dependent:
        return Scale.LOG2_RATIO, RATIO_MARGIN if margin is None else math.log2(1.0 + margin)
    if margin is None:
        return Scale.DIFFERENCE, ACCURACY_MARGIN
    return Scale.DIFFERENCE, margin * FACTORS[claim["metric"]]


def claim_id(claim: dict) -> str:
    """'test_accuracy:bn-vs-plain:higher': unique within a study (`spec.Study` checks)."""
    return f"{claim['metric']}:{claim['variant']}-vs-{claim['than']}:{claim['direction']}"


def study_rules(decl: dict) -> tuple[Rule, ...]:
    """The rules of the claims stored in a study's declaration, in their order."""
    family = f"study {decl['study']}"
    out = []
    for c in decl["claims"]:
        claim = StudyClaim(
            claim_id(c),
            c["text"],
            family,
            f"the study {decl['study']!r}, declared before its runs",
            Direction(c["direction"]),
            "no external number: the study's own question",
        )
        scale, margin = _margin(c)
        rule = Rule(
            claim,
            decl["study"],
            MEASURES[c["metric"]],
            scale,
            margin,
            decl["seeds"],
            gates=(TRAINS,),
            comparison=c["than"],
            treatment=c["variant"],
            digits=2 if scale is Scale.DIFFERENCE else 3,
        )
        out.append(rule)
    return tuple(out)


def check_claims(decl: dict) -> None:
    """Refuse, before anything is written, claims whose rules cannot be built."""
    if decl["claims"] and decl["seeds"] < 2:
        raise BnlabError(
            f"seeds: got {decl['seeds']} (Study.seeds or --seeds), expected at least 2: a "
            "claim is decided by a paired t-test over seeds"
        )
    try:
        study_rules(decl)
    except ValueError as e:
        raise BnlabError(f"Study.claims: {e}") from e


def register(out_dir: Path, decl: dict, commit: str) -> dict[str, dict]:
    """Record the study's rules (DIR/preregistration.json); entries on record are kept."""
    return registration.register(out_dir, study_rules(decl), commit)
