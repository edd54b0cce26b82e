"""What an experiment is: a function from config to numbers, plus how to report them.

An experiment (`bnlab reproduce NAME`) trains one or more engine configs over seeds into its
own directory, then reads the stored results back into report sections and scorecard rows.
Training and analysis are separate, so `bnlab report DIR` can re-render without retraining.

Each experiment module registers its experiments in `EXPERIMENTS` at import;
`bnlab.reproduce.registry` imports them all and fixes the order `bnlab reproduce all` runs
and the report shows them in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bnlab.engine import RunContext
from bnlab.report import Row, Rule, Section

# Seeds: one number for every setting, or the pre-registered plan, setting -> seeds
Seeds = int | Mapping[str, int]


@dataclass(frozen=True)
class ExperimentResult:
    """What one experiment contributes to the report."""

    name: str
    sections: tuple[Section, ...]
    scorecard: tuple[Row, ...]  # before the families' multiplicity control
    wall_time_s: float
    quick: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Experiment:
    """A named reproduction.

    run(out_dir, seeds, quick, ctx): train everything into `out_dir` (created by the
        caller; resumable through the engine's checkpoints) under the run context `ctx`
        (`bnlab.engine.RunContext`: device, threads, executor, progress bars), printing
        progress lines.
    analyze(out_dir): read `out_dir` back and return the experiment's report contribution;
        figures are written under `out_dir`.
    rules(seeds): the decision rules of its claims for that many seeds, recorded before
        training (`bnlab.report.registration`); analyze scores with the same objects.
    default_seeds: the pre-registered number of seeds, one for every setting or per
        setting (`bnlab.reproduce.preregistered` says how it was chosen).
    """

    name: str
    title: str
    run: Callable[[Path, Seeds, bool, RunContext], None]
    analyze: Callable[[Path], ExperimentResult]
    rules: Callable[[Seeds], tuple[Rule, ...]]
    default_seeds: Seeds = 5


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"experiment {experiment.name!r} is registered twice")
    EXPERIMENTS[experiment.name] = experiment
    return experiment
