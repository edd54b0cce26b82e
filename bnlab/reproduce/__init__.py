"""Reproductions of the canonical Batch Normalization results: `bnlab reproduce`."""

from bnlab.reproduce.experiment import EXPERIMENTS, Experiment, ExperimentResult, register
from bnlab.reproduce.registry import experiments

__all__ = ["EXPERIMENTS", "Experiment", "ExperimentResult", "experiments", "register"]
