"""Reproductions of the canonical Batch Normalization results: `bnlab reproduce`."""

from bnlab._lazy import attach

# Imported on first use (bnlab._lazy): `bnlab reproduce --help` starts without torch.
__all__ = attach(
    __name__,
    {
        "EXPERIMENTS": "bnlab.reproduce.experiment",
        "Experiment": "bnlab.reproduce.experiment",
        "ExperimentResult": "bnlab.reproduce.experiment",
        "register": "bnlab.reproduce.experiment",
        "experiments": "bnlab.reproduce.registry",
    },
)
