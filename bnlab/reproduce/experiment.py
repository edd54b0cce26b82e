"""What an experiment is: a function from config to numbers, plus how to report them.

An experiment (`bnlab reproduce NAME`) trains one or more engine configs over seeds into its
own directory, then reads the stored results back into report sections and scorecard rows.
Training and analysis are separate, so `bnlab report DIR` can re-render without retraining.

Experiments register themselves in `EXPERIMENTS` from the modules listed in
`EXPERIMENT_MODULES` (imported on first use, so adding one is one line).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bnlab.report import ScorecardRow, Section

# Modules that define experiments; each calls `register(...)` at import.
EXPERIMENT_MODULES: tuple[str, ...] = (
    "bnlab.reproduce.ioffe2015_mnist",
    "bnlab.reproduce.ioffe2015_lr",
    "bnlab.reproduce.init_sensitivity",
    "bnlab.reproduce.matrix",
    "bnlab.reproduce.mnist_notebook",
    "bnlab.reproduce.cifar10_cnn",
    "bnlab.analysis.experiments",  # Santurkar et al. 2018
)


@dataclass(frozen=True)
class ExperimentResult:
    """What one experiment contributes to the report."""

    name: str
    sections: tuple[Section, ...]
    scorecard: tuple[ScorecardRow, ...]
    wall_time_s: float
    quick: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Experiment:
    """A named reproduction.

    run(out_dir, seeds, quick, progress): train everything into `out_dir` (created by the
        caller; resumable through the engine's checkpoints), printing progress.
    analyze(out_dir): read `out_dir` back and return the experiment's report contribution;
        figures are written under `out_dir`.
    """

    name: str
    title: str
    run: Callable[[Path, int, bool, bool], None]
    analyze: Callable[[Path], ExperimentResult]
    default_seeds: int = 5


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"experiment {experiment.name!r} is registered twice")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def experiments() -> dict[str, Experiment]:
    """All registered experiments, importing the defining modules on first use."""
    for module in EXPERIMENT_MODULES:
        importlib.import_module(module)
    return EXPERIMENTS
