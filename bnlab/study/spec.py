"""A study, declared in a few lines: the model, the variants to compare, the data, the
optimizer, steps and seeds, what to log, and the claims to decide, fixed before the run.

    study = Study(
        name="gn-vs-bn",
        model=lambda: ResNet(width=8),                      # any nn.Module, built per seed
        data="cifar10",                                     # or a CSV, arrays, a Dataset
        variants={
            "bn": Variant(),                                # the model as the factory builds it
            "gn": Variant(model=replace_norm("group", groups=4)),
        },
        batch_size=8, steps=300, seeds=5,
        claims=[Claim("test_accuracy", "gn", than="bn", direction="higher")],
    )

Every field is plain data or a callable; `bnlab.study.run(study, out_dir)` validates all of
it before any work (`bnlab.study.checks`) and stores the declaration with the runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from bnlab.errors import BnlabError

__all__ = ["DIRECTIONS", "METRICS", "Claim", "Data", "Optimizer", "Study", "Variant"]

# What a claim may name: the final value of a logged metric, per seed (bnlab.study.analyze).
METRICS = ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "grad_norm")
# Claim directions, as bnlab.report.claims.Direction reads them.
DIRECTIONS = ("higher", "lower", "similar", "similar or higher")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
DTYPES = ("float32", "float64")


def _positive(owner: str, name: str, value, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else ">= 1"
        raise BnlabError(f"{owner}.{name}: got {value!r}, expected an int {bound}")


def _choice(owner: str, name: str, value, choices: Sequence[str]) -> None:
    if value not in choices:
        raise BnlabError(f"{owner}.{name}: got {value!r}, expected one of {', '.join(choices)}")


@dataclass(frozen=True)
class Optimizer:
    """SGD or Adam (torch's conventions), and the learning-rate schedule over the steps."""

    name: str = "sgd"  # "sgd" or "adam"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.0  # SGD momentum, no dampening
    weight_decay: float = 0.0  # L2 coefficient added to the gradient
    schedule: str = "constant"  # "constant", or "cosine": to 0 at the last step
    warmup: int = 0  # steps of linear warm-up from 0 to lr

    def __post_init__(self):
        _choice("Optimizer", "name", self.name, OPTIMIZERS)
        _choice("Optimizer", "schedule", self.schedule, SCHEDULES)
        for key in ("lr", "momentum", "weight_decay"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise BnlabError(f"Optimizer.{key}: got {value!r}, expected a number >= 0")
        _positive("Optimizer", "warmup", self.warmup, allow_zero=True)

    def lr_at(self, step: int, steps: int, lr: float | None = None) -> float:
        """The learning rate of step `step` (1-based) of `steps`."""
        peak = self.lr if lr is None else lr
        if step <= self.warmup:
            return peak * step / self.warmup
        if self.schedule == "cosine":
            done = (step - self.warmup - 1) / max(1, steps - self.warmup)
            return peak * 0.5 * (1.0 + math.cos(math.pi * done))
        return peak


@dataclass(frozen=True)
class Variant:
    """One arm of the comparison: what it changes from the study's defaults (None: keep).

    `model` takes the model the study's factory built and returns the model to train, e.g.
    `replace_norm("group", groups=4)` or `lambda m: bnlab.convert(m, to="bnlab")`.
    `standardize` z-scores every input feature with the training split's mean and std.
    """

    model: Callable[[nn.Module], nn.Module] | None = None
    lr: float | None = None
    batch_size: int | None = None
    standardize: bool | None = None

    def __post_init__(self):
        if self.model is not None and not callable(self.model):
            raise BnlabError(
                f"Variant.model: got {type(self.model).__name__}, expected a callable that "
                "takes the built model and returns the model to train"
            )
        if self.lr is not None and not (isinstance(self.lr, int | float) and self.lr >= 0):
            raise BnlabError(f"Variant.lr: got {self.lr!r}, expected a learning rate >= 0")
        if self.batch_size is not None:
            _positive("Variant", "batch_size", self.batch_size)


@dataclass(frozen=True)
class Claim:
    """A claim to decide: `metric` of `variant` minus that of `than`, paired by seed, is
    `direction` ("higher", "lower", "similar" within ±margin, "similar or higher").

    `margin`: effects inside ±margin are too small to matter. For accuracies it is in their
    own units (fractions: 0.01 is one point); for losses and gradient norms, whose size
    depends on the model and data, it is relative (0.25: 25% larger or smaller; the effect
    is log2(variant / than) per seed). None: the lab's defaults, 0.5 points or 25%
    (`bnlab.study.rules`). Required for "similar".
    """

    metric: str
    variant: str
    than: str
    direction: str = "higher"
    margin: float | None = None
    statement: str = ""  # default: written from the fields

    def __post_init__(self):
        _choice("Claim", "metric", self.metric, METRICS)
        _choice("Claim", "direction", self.direction, DIRECTIONS)
        if self.margin is not None and not (
            isinstance(self.margin, int | float) and self.margin >= 0
        ):
            raise BnlabError(f"Claim.margin: got {self.margin!r}, expected a number >= 0")
        if self.direction == "similar" and self.margin is None:
            raise BnlabError("Claim.margin: direction 'similar' needs a margin, got None")
        if self.direction in ("similar", "similar or higher") and self.margin == 0:
            raise BnlabError(
                f"Claim.margin: direction {self.direction!r} needs a margin > 0, got 0"
            )
        if self.variant == self.than:
            raise BnlabError(f"Claim.than: got {self.than!r}, the claim's own variant")

    @property
    def text(self) -> str:
        if self.statement:
            return self.statement
        what = self.metric.replace("_", " ")
        if self.direction == "similar":
            return f"{self.variant} has a final {what} within ±{self.margin:g} of {self.than}'s."
        return f"{self.variant} has a {self.direction} final {what} than {self.than}."


@dataclass(frozen=True)
class Data:
    """Where the data comes from, and how to split it when it has no test split.

    `source` is a registered dataset name ("cifar10", "mnist", "digits", ...), a CSV path
    (one row per example, a `label` column, every other column a number), `(x, y)` arrays,
    `((x, y), (x_test, y_test))`, or a `torch.utils.data.Dataset` (or a (train, test) pair).
    """

    source: Any
    label: str = "label"  # CSV: the label column
    test_fraction: float = 0.2  # without a test split: this share is held out (by split_seed)
    split_seed: int = 0
    transform: str = "standardize"  # registered datasets: bnlab.data.to_tensor's transform
    train_subset: int = 0  # registered datasets: keep the first n training examples; 0 = all
    test_subset: int = 0  # likewise for the test split

    def __post_init__(self):
        if not 0.0 < self.test_fraction < 1.0:
            raise BnlabError(f"Data.test_fraction: got {self.test_fraction!r}, expected 0 < f < 1")
        for key in ("split_seed", "train_subset", "test_subset"):
            _positive("Data", key, getattr(self, key), allow_zero=True)


@dataclass(frozen=True)
class Study:
    """The whole question. `model` builds one model (called once per seed and variant, with
    torch's global RNG seeded from the member's seed); the variants modify it."""

    name: str
    model: Callable[[], nn.Module]
    data: Any  # a Data, or anything Data.source takes
    variants: Mapping[str, Variant]
    claims: Sequence[Claim] = ()
    optimizer: Optimizer = field(default_factory=Optimizer)
    batch_size: int = 64  # examples per model per step (a variant may change it)
    steps: int = 500  # optimizer steps of every model
    seeds: int = 5  # models per variant: seeds seed, seed + 1, ...
    seed: int = 0
    log_every: int = 1  # steps between logged training metrics
    eval_every: int = 0  # steps between test evaluations; 0: 10 over the run
    checkpoint_every: int = 100  # steps between checkpoints (and metric flushes)
    activations: tuple[str, ...] = ()  # modules whose input statistics are logged at evals
    dtype: str = "float32"
    vmap: bool = True  # False: train the members one after another

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise BnlabError(f"Study.name: got {self.name!r}, expected a non-empty name, no '/'")
        if not callable(self.model):
            raise BnlabError("Study.model: expected a callable that returns an nn.Module")
        _variants(self.variants)
        object.__setattr__(self, "variants", MappingProxyType(dict(self.variants)))
        object.__setattr__(self, "claims", tuple(self.claims))
        object.__setattr__(self, "activations", tuple(self.activations))
        if not isinstance(self.data, Data):
            object.__setattr__(self, "data", Data(self.data))
        for key in ("batch_size", "steps", "seeds", "log_every", "checkpoint_every"):
            _positive("Study", key, getattr(self, key))
        for key in ("seed", "eval_every"):
            _positive("Study", key, getattr(self, key), allow_zero=True)
        _choice("Study", "dtype", self.dtype, DTYPES)
        for claim in self.claims:
            _claim_fits(claim, self.variants)
        seen = [(c.metric, c.variant, c.than, c.direction) for c in self.claims]
        if len(set(seen)) != len(seen):
            raise BnlabError(
                "Study.claims: a claim repeats (the same metric, variants and direction); "
                "expected each question once"
            )

    @property
    def evaluation_every(self) -> int:
        return self.eval_every or max(1, self.steps // 10)

    def member_seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.seeds)]


def _variants(variants) -> None:
    if not isinstance(variants, Mapping) or not variants:
        raise BnlabError("Study.variants: expected a dict of name -> Variant, got none")
    for name, variant in variants.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise BnlabError(f"Study.variants: got the name {name!r}, expected a name, no '/'")
        if not isinstance(variant, Variant):
            raise BnlabError(
                f"Study.variants[{name!r}]: got {type(variant).__name__}, expected Variant"
            )


def _claim_fits(claim, variants: Mapping[str, Variant]) -> None:
    if not isinstance(claim, Claim):
        raise BnlabError(f"Study.claims: got {type(claim).__name__}, expected Claim")
    for role in ("variant", "than"):
        name = getattr(claim, role)
        if name not in variants:
            raise BnlabError(
                f"Claim.{role}: unknown variant {name!r} in the claim {claim.text!r}; "
                f"expected one of {', '.join(variants)}"
            )
