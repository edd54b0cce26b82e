"""Every experiment of `bnlab reproduce`, in the order `all` runs them and the report shows them.

Importing an experiment module registers its experiments; importing this module imports them
all. A new experiment is one module and one line in `BUILT_IN`.
"""

from __future__ import annotations

from bnlab.reproduce import (
    bn_placement,
    cifar10_cnn,
    init_sensitivity,
    ioffe2015_lr,
    ioffe2015_mnist,
    matrix,
    mnist_notebook,
    santurkar2018,
    small_batch,
    train_test_stats,
)
from bnlab.reproduce.experiment import EXPERIMENTS, Experiment

BUILT_IN = (
    ioffe2015_mnist.EXPERIMENT,
    ioffe2015_lr.EXPERIMENT,
    init_sensitivity.EXPERIMENT,
    matrix.EXPERIMENT,
    mnist_notebook.EXPERIMENT,
    cifar10_cnn.EXPERIMENT,
    *santurkar2018.EXPERIMENTS.values(),
    small_batch.EXPERIMENT,
    train_test_stats.EXPERIMENT,
    bn_placement.EXPERIMENT,
)


def experiments() -> dict[str, Experiment]:
    """Every registered experiment by name: the built-in ones in order, then any others."""
    ordered = {e.name: e for e in BUILT_IN}
    return {**ordered, **{n: e for n, e in EXPERIMENTS.items() if n not in ordered}}
