"""Pre-registered decision rules: how a claim is decided in one setting, fixed before its runs.

A `Rule` names everything a verdict depends on: the claim, the setting it is measured in, the
measure and the scale its per-seed effects live on, the margin, the test (which follows from
the claim's direction), the gates the data must pass first, the number of seeds, and the
rule's role. Rules are declared in code next to the experiment that measures them, as
objects the experiment refers to, and each has a `fingerprint`: `bnlab reproduce` records
the fingerprints before the first training step (`bnlab.report.registration`), so the
report can show, per verdict, that its rule predates the data it judges.

Scales. An effect is computed per seed, paired (member k of both networks shares seed k's
initialization stream and data order):

- `DIFFERENCE`: BN minus the comparison, in the measure's own units. Only for measures whose
  size means the same in every setting: accuracies and errors in percentage points.
- `LOG2_RATIO`: log2(BN / comparison). For positive measures whose size depends on the
  setting (a loss's level, a gradient's scale, a step count): a margin of log2(1.25) means
  "25% larger or smaller" on every network and task. A scale-dependent measure on the
  difference scale is refused: its margin would mean something else in every setting.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import dataclass

from bnlab.report.claims import Claim, Direction

RATIO_MARGIN = math.log2(1.25)  # a 25% change either way: the default margin on ratio scales


class Scale(enum.Enum):
    DIFFERENCE = "difference"  # BN − comparison, in the measure's units
    LOG2_RATIO = "log2 ratio"  # log2(BN / comparison), per seed


class Role(enum.Enum):
    """How a rule's verdict counts."""

    PRIMARY = "primary"  # a headline verdict, decided with Holm within its source's family
    SECONDARY = "secondary"  # another setting, declared before the runs: shown, not counted
    EXPLORATORY = "exploratory"  # added after seeing data: shown and labelled, never counted


class Test(enum.Enum):
    """The test a claim's direction calls for (one-sided paired t-tests on the effects)."""

    SUPERIORITY = "superiority"  # HIGHER / LOWER: the effect differs from 0 in that direction
    EQUIVALENCE = "equivalence"  # SIMILAR: TOST, the effect lies within ±margin
    NON_INFERIORITY = "non-inferiority"  # NOT_LOWER: the effect is above −margin


TESTS = {
    Direction.HIGHER: Test.SUPERIORITY,
    Direction.LOWER: Test.SUPERIORITY,
    Direction.SIMILAR: Test.EQUIVALENCE,
    Direction.NOT_LOWER: Test.NON_INFERIORITY,
}


@dataclass(frozen=True)
class Measure:
    """What one network's run is summarized by, before BN and its comparison are paired."""

    id: str
    text: str  # what is measured, with its units
    unit: str = ""  # appended to values on the difference scale, e.g. " pp"
    scale_dependent: bool = False  # its size depends on the setting (loss level, grad scale)
    low: float = -math.inf  # the range one network's value can take (for intervals)
    high: float = math.inf


@dataclass(frozen=True)
class Gate:
    """A condition the data must meet before a claim can be measured in a setting.

    A gate that fails makes the verdict "not measurable" in that setting, with the reason: a
    comparison against a network that does not train, or a measure that a diverged run does
    not have, says nothing about the claim.
    """

    id: str
    text: str


@dataclass(frozen=True)
class Rule:
    """How `claim` is decided in `setting` (see the module docstring)."""

    claim: Claim
    setting: str  # "experiment" or "experiment/setting", as the scorecard names it
    measure: Measure
    scale: Scale
    margin: float  # on `scale`: log2 units for LOG2_RATIO, the measure's units otherwise
    seeds: int  # planned seeds (pairs)
    gates: tuple[Gate, ...] = ()
    role: Role = Role.PRIMARY
    comparison: str = "no BN"  # what the effect compares against: "BN − <comparison>"
    treatment: str = "BN"
    digits: int = 2
    first_seed: int = 0  # the pairs' seeds are first_seed, first_seed + 1, ...

    def __post_init__(self) -> None:
        where = f"Rule {self.claim.id} @ {self.setting}"
        if not self.margin >= 0:
            raise ValueError(f"{where}: margin={self.margin!r}, expected >= 0")
        if self.test is not Test.SUPERIORITY and self.margin == 0:
            raise ValueError(f"{where}: a {self.test.value} test needs a margin > 0")
        if self.measure.scale_dependent and self.scale is not Scale.LOG2_RATIO:
            raise ValueError(
                f"{where}: {self.measure.id!r} is scale-dependent, so its margin must be "
                f"relative: expected scale LOG2_RATIO, got {self.scale.name}"
            )
        if self.seeds < 2:
            raise ValueError(f"{where}: seeds={self.seeds}, expected >= 2 (an interval)")

    @property
    def test(self) -> Test:
        return TESTS[self.claim.direction]

    @property
    def id(self) -> str:
        return f"{self.claim.id}@{self.setting}"

    @property
    def unit(self) -> str:
        return " log2" if self.scale is Scale.LOG2_RATIO else self.measure.unit

    @property
    def seeds_text(self) -> str:
        return seeds_text(self.seeds, self.first_seed)

    @property
    def effect_text(self) -> str:
        """'log2(BN / no BN) of <measure>' or '<measure>, BN − no BN'."""
        if self.scale is Scale.LOG2_RATIO:
            return f"log2({self.treatment} / {self.comparison}) of the {self.measure.text}"
        return f"{self.measure.text}, {self.treatment} − {self.comparison}"

    def as_dict(self) -> dict:
        """Everything the verdict depends on, as plain JSON values (what is fingerprinted).
        `first_seed` appears only when it is not 0, so rules recorded before it existed keep
        their fingerprints."""
        return {
            "claim": self.claim.id,
            "statement": self.claim.statement,
            "direction": self.claim.direction.value,
            "family": self.claim.family,
            "setting": self.setting,
            "measure": {
                "id": self.measure.id,
                "text": self.measure.text,
                "scale_dependent": self.measure.scale_dependent,
            },
            "scale": self.scale.value,
            "margin": round(self.margin, 12),
            "test": self.test.value,
            "seeds": self.seeds,
            "gates": [{"id": g.id, "text": g.text} for g in self.gates],
            "role": self.role.value,
            "comparison": f"{self.treatment} − {self.comparison}",
        } | ({"first_seed": self.first_seed} if self.first_seed else {})

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of `as_dict`: changes whenever the decision rule does."""
        text = json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def seeds_text(seeds: int, first_seed: int = 0) -> str:
    """'20', or '40 (seeds 1000–1039)' when the seeds do not start at 0."""
    if not first_seed:
        return str(seeds)
    return f"{seeds} (seeds {first_seed}–{first_seed + seeds - 1})"


def check_margin(rule: Rule, comparison_values) -> None:
    """Refuse a difference-scale margin as large as the comparison's own value.

    On the difference scale a margin is an absolute amount; if it is at least the
    comparison network's whole value, "within the margin" holds whatever BN does (BN could
    remove the quantity entirely). Raises ValueError naming the rule.
    """
    import numpy as np

    if rule.scale is not Scale.DIFFERENCE or rule.margin == 0:
        return
    values = np.asarray(comparison_values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size and rule.margin >= abs(float(values.mean())):
        raise ValueError(
            f"Rule {rule.id}: margin {rule.margin:g}{rule.measure.unit} is at least the "
            f"{rule.comparison} network's own value ({float(values.mean()):.4g}); a margin "
            "must be smaller than the quantity it compares (use a ratio scale)"
        )
