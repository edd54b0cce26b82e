"""The claims bnlab tests: what the papers and the student projects say about BN, as they say it.

A `Claim` is the statement, its source and family, the direction of the effect it predicts
(the treatment, usually BN, minus its comparison) and what the source reports. How a claim is
decided in a setting (the measure, its scale, margin, test, gates and seeds) is a
`bnlab.report.rules.Rule`, declared next to the experiment that measures it; the verdicts are
computed in `bnlab.report.verdicts`.

Families are the units of multiplicity control: the primary rows of one family share Holm's
correction. Paper claims and the student projects' claims are separate families, so they are
also counted apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Direction(enum.Enum):
    """What the claim says about the effect (treatment minus comparison)."""

    HIGHER = "higher"  # the effect is positive
    LOWER = "lower"  # the effect is negative
    SIMILAR = "similar"  # the effect is within ±margin
    NOT_LOWER = "similar or higher"  # the effect is not below -margin


IOFFE = "Ioffe & Szegedy 2015"
SANTURKAR = "Santurkar et al. 2018"
WU_HE = "Wu & He 2018"
WU_JOHNSON = "Wu & Johnson 2021"
IOFFE_RENORM = "Ioffe 2017"
PROJECTS = "student projects"  # the course projects bnlab grew from (shared/seeds/)
FAMILIES = (IOFFE, SANTURKAR, WU_HE, WU_JOHNSON, IOFFE_RENORM, PROJECTS)
PAPERS = FAMILIES[:-1]


@dataclass(frozen=True)
class Claim:
    """One claim, stated as its source states it, with the number its source gives.

    `reference` is what the sources say for every setting; `numbers` holds a source's own
    number where it belongs to one setting only, as (setting, text): the report shows it in
    that setting's row and nowhere else (`reference_for`).
    """

    id: str
    statement: str
    family: str  # one of FAMILIES: Holm's correction runs within a family
    source: str  # paper or project, with section
    direction: Direction
    reference: str  # what the sources say for every setting
    numbers: tuple[tuple[str, str], ...] = ()  # (setting, the source's number there)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"Claim {self.id}: family {self.family!r}, expected one of {FAMILIES}")

    def reference_for(self, setting: str) -> str:
        """The source's number for `setting`, or the claim's general reference saying that
        the sources' numbers belong to other settings."""
        own = [text for where, text in self.numbers if where == setting]
        if own:
            return "; ".join([*own, self.reference])
        if not self.numbers:
            return self.reference
        others = ", ".join(where for where, _ in self.numbers)
        return (
            f"{self.reference}; no source number for this setting (the sources' are for {others})"
        )


_REPRO = "reproduction project (CS4100)"
_OPT = "optimization-study project"
_FIGURE_ONLY = "shown in a figure; no number in the text"


def _claim(id, statement, family, source, direction, reference, numbers=()) -> Claim:
    return Claim(id, statement, family, source, direction, reference, tuple(numbers))


# ---- Ioffe & Szegedy 2015
BN_FINAL_ACCURACY = _claim(
    "bn-final-accuracy",
    "BN reaches higher final test accuracy.",
    IOFFE,
    f"{IOFFE}, Sec. 4.1, Fig. 1a; {_REPRO}, MNIST and CIFAR-10 tables",
    Direction.HIGHER,
    "paper: " + _FIGURE_ONLY,
    (
        (
            "ioffe2015-mnist",
            "reproduction project, MNIST: 98.15% vs 94.92% (+3.23 pp), one run each",
        ),
        (
            "cifar10-cnn",
            "reproduction project, full CIFAR-10 at 50K steps: 85.23% vs 82.71% (+2.52 pp), "
            "one run each (ours: the 5,000-image subset)",
        ),
    ),
)

BN_FEWER_STEPS = _claim(
    "bn-fewer-steps",
    "BN reaches a given test accuracy in fewer training steps.",
    IOFFE,
    f"{IOFFE}, Sec. 4.1, Fig. 1a; {_REPRO}, CIFAR-10 table",
    Direction.LOWER,
    "paper: " + _FIGURE_ONLY,
    (
        (
            "cifar10-cnn",
            "reproduction project, full CIFAR-10 at 5K steps: 74.96% vs 10.00% ('~10× "
            "faster'), one run each (ours: the 5,000-image subset)",
        ),
    ),
)

BN_PERCENTILE_STABILITY = _claim(
    "bn-percentile-stability",
    "BN keeps the sigmoid-input percentiles (15/50/85th) more stable over training.",
    IOFFE,
    f"{IOFFE}, Sec. 4.1, Fig. 1b,c",
    Direction.LOWER,
    "paper: 'much more stable' with BN; " + _FIGURE_ONLY,
)

BN_HIGHER_LR = _claim(
    "bn-higher-lr",
    "BN tolerates higher learning rates.",
    IOFFE,
    f"{IOFFE}, abstract, Sec. 3.3 and 4.2.1; {_REPRO}, learning-rate table",
    Direction.HIGHER,
    "paper (ImageNet): BN-x30 trains at 30× the rate",
    (
        (
            "ioffe2015-lr",
            "reproduction project: BN ahead by +84.66 / +34.10 / +4.19 pp at lr 0.01 / 0.05 "
            "/ 0.1, one run each (its table names neither dataset nor optimizer)",
        ),
    ),
)

BN_INIT_INSENSITIVE = _claim(
    "bn-init-insensitive",
    "BN reduces sensitivity to initialization.",
    IOFFE,
    f"{IOFFE}, abstract ('be less careful about initialization'); explainer project, "
    "Key Benefits; notebook project, Sec. 10",
    Direction.LOWER,
    "stated, not measured; no number",
)

BN_BEFORE_NONLINEARITY = _claim(
    "bn-before-nonlinearity",
    "Normalizing x = Wu + b before the nonlinearity gives a more stable distribution than "
    "normalizing the layer's output after it.",
    IOFFE,
    f"{IOFFE}, Sec. 3.2",
    Direction.LOWER,
    "a design argument ('more likely to have a symmetric, non-sparse distribution ... "
    "likely to produce activations with a stable distribution'); the paper runs no comparison",
)

BN_BEFORE_NONLINEARITY_ACCURACY = _claim(
    "bn-before-nonlinearity-accuracy",
    "BN before the nonlinearity reaches higher final test accuracy than BN after it.",
    IOFFE,
    f"{IOFFE}, Sec. 3.2 (the paper's choice; accuracy is our secondary reading of it)",
    Direction.HIGHER,
    "the paper runs no comparison",
)
# ---- Santurkar et al. 2018
SANTURKAR_ICS_NOT_REDUCED = _claim(
    "santurkar-ics-not-reduced",
    "BN does not reduce internal covariate shift: with BN it is similar or larger.",
    SANTURKAR,
    f"{SANTURKAR}, Sec. 2.2, Fig. 5 (ℓ2 form)",
    Direction.NOT_LOWER,
    "paper: similar or larger with BN; " + _FIGURE_ONLY,
)

SANTURKAR_ICS_COSINE_NOT_REDUCED = _claim(
    "santurkar-ics-cosine-not-reduced",
    "BN does not reduce internal covariate shift, measured as 1 − cos(G, G').",
    SANTURKAR,
    f"{SANTURKAR}, Sec. 2.2, Fig. 5 (cosine form)",
    Direction.NOT_LOWER,
    "paper: cosine similar or lower with BN; " + _FIGURE_ONLY,
)

SANTURKAR_NOISY_BN_LIKE_BN = _claim(
    "santurkar-noisy-bn-like-bn",
    "Noisy BN trains about as well as BN.",
    SANTURKAR,
    f"{SANTURKAR}, Sec. 2.1, Fig. 2",
    Direction.SIMILAR,
    "paper: noisy BN close to BN; " + _FIGURE_ONLY,
)

SANTURKAR_NOISY_BN_BEATS_NONE = _claim(
    "santurkar-noisy-bn-beats-none",
    "Noisy BN trains better than no BN.",
    SANTURKAR,
    f"{SANTURKAR}, Sec. 2.1, Fig. 2",
    Direction.HIGHER,
    "paper: noisy BN above the standard net; " + _FIGURE_ONLY,
)

SANTURKAR_NOISY_BN_LESS_STABLE = _claim(
    "santurkar-noisy-bn-less-stable",
    "Noisy BN's activation distributions are less stable than BN's.",
    SANTURKAR,
    f"{SANTURKAR}, Sec. 2.1, Fig. 2",
    Direction.HIGHER,
    "paper: visibly less stable; " + _FIGURE_ONLY,
)

SANTURKAR_LOSS_VARIATION = _claim(
    "santurkar-loss-variation",
    "With BN the loss varies less along the gradient direction.",
    SANTURKAR,
    f"{SANTURKAR}, Sec. 3.1, Fig. 4a",
    Direction.LOWER,
    "paper: smaller with BN; " + _FIGURE_ONLY,
)

SANTURKAR_GRADIENT_PREDICTIVENESS = _claim(
    "santurkar-gradient-predictiveness",
    "With BN the gradient changes less along the gradient direction.",
    SANTURKAR,
    f"{SANTURKAR}, Sec. 3.1, Fig. 4b",
    Direction.LOWER,
    "paper: smaller with BN; " + _FIGURE_ONLY,
)

SANTURKAR_BETA_SMOOTHNESS = _claim(
    "santurkar-beta-smoothness",
    "With BN the effective β-smoothness is smaller.",
    SANTURKAR,
    f"{SANTURKAR}, Sec. 3.1, Fig. 4c",
    Direction.LOWER,
    "paper: smaller with BN; " + _FIGURE_ONLY,
)

# ---- Wu & He 2018
BN_SMALL_BATCH_ERROR = _claim(
    "bn-small-batch-error",
    "BN's error grows sharply as the batch shrinks.",
    WU_HE,
    f"{WU_HE} (Group Normalization), Fig. 1, Table 2",
    Direction.HIGHER,
    "BN 34.7% at batch 2 vs 23.6% at 32 (+11.1 pp), ResNet-50 on ImageNet",
)

GN_SMALL_BATCH_FLAT = _claim(
    "gn-small-batch-flat",
    "GroupNorm's error stays flat as the batch shrinks.",
    WU_HE,
    f"{WU_HE} (Group Normalization), Fig. 1, Table 2",
    Direction.SIMILAR,
    "GN 24.1% at batch 2 vs 24.1% at 32 (0.0 pp), ResNet-50 on ImageNet",
)

GN_BEATS_BN_SMALL_BATCH = _claim(
    "gn-beats-bn-small-batch",
    "At a batch of 2, GroupNorm has lower error than BN.",
    WU_HE,
    f"{WU_HE} (Group Normalization), abstract and Table 2",
    Direction.HIGHER,
    "'10.6% lower error than its BN counterpart' (34.7% vs 24.1%) at batch 2",
)

# ---- Ioffe 2017
RENORM_BEATS_BN_SMALL_BATCH = _claim(
    "renorm-beats-bn-small-batch",
    "At a small batch, Batch Renormalization has lower error than BN.",
    IOFFE_RENORM,
    f"{IOFFE_RENORM} (Batch Renormalization), abstract and Sec. 4.2",
    Direction.HIGHER,
    "'substantially better than batchnorm when training with small ... minibatches'; "
    "the paper's numbers are not transcribed here",
)

# ---- Wu & Johnson 2021
PRECISE_BN_NOT_WORSE = _claim(
    "precise-bn-not-worse",
    "Precise population statistics (an equal-weight average over batches after training) "
    "evaluate at least as well as BN's EMA running statistics.",
    WU_JOHNSON,
    f"{WU_JOHNSON} (Rethinking 'Batch' in BatchNorm), Sec. 3",
    Direction.NOT_LOWER,
    "paper's numbers not transcribed here (its tables were not readable in this project)",
)

BATCH_STATS_SMALL_BATCH = _claim(
    "batch-stats-small-batch",
    "At small batch sizes, normalizing test batches of the training size with their own "
    "statistics beats population statistics (the train-test inconsistency).",
    WU_JOHNSON,
    f"{WU_JOHNSON} (Rethinking 'Batch' in BatchNorm), Sec. 4",
    Direction.HIGHER,
    "paper's numbers not transcribed here (its tables were not readable in this project)",
)

# ---- the student projects
BN_SMOOTHER_LOSS = _claim(
    "bn-smoother-loss",
    "BN gives smoother training-loss curves.",
    PROJECTS,
    f"{_OPT}, Key Findings 3",
    Direction.LOWER,
    "expected, not measured; no number",
)

BN_STABLE_GRAD_NORM = _claim(
    "bn-stable-grad-norm",
    "BN keeps gradient norms more stable.",
    PROJECTS,
    f"{_OPT}, Key Findings 4",
    Direction.LOWER,
    "expected, not measured; no number",
)


CLAIMS: tuple[Claim, ...] = (
    BN_FINAL_ACCURACY,
    BN_FEWER_STEPS,
    BN_PERCENTILE_STABILITY,
    BN_HIGHER_LR,
    BN_INIT_INSENSITIVE,
    BN_BEFORE_NONLINEARITY,
    BN_BEFORE_NONLINEARITY_ACCURACY,
    SANTURKAR_ICS_NOT_REDUCED,
    SANTURKAR_ICS_COSINE_NOT_REDUCED,
    SANTURKAR_NOISY_BN_LIKE_BN,
    SANTURKAR_NOISY_BN_BEATS_NONE,
    SANTURKAR_NOISY_BN_LESS_STABLE,
    SANTURKAR_LOSS_VARIATION,
    SANTURKAR_GRADIENT_PREDICTIVENESS,
    SANTURKAR_BETA_SMOOTHNESS,
    BN_SMALL_BATCH_ERROR,
    GN_SMALL_BATCH_FLAT,
    GN_BEATS_BN_SMALL_BATCH,
    RENORM_BEATS_BN_SMALL_BATCH,
    PRECISE_BN_NOT_WORSE,
    BATCH_STATS_SMALL_BATCH,
    BN_SMOOTHER_LOSS,
    BN_STABLE_GRAD_NORM,
)

CLAIMS_BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}
