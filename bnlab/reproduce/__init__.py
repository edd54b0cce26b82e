"""Reproductions of the canonical Batch Normalization results: `bnlab reproduce`."""

from bnlab.reproduce.experiment import (
    EXPERIMENTS,
    Experiment,
    ExperimentResult,
    experiments,
    register,
)

__all__ = ["EXPERIMENTS", "Experiment", "ExperimentResult", "experiments", "register"]
