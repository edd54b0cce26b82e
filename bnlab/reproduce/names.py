"""The experiments' names, importable without torch, so that `bnlab reproduce --help` lists
them at once. Repeated from `bnlab.reproduce.registry`, which imports every experiment;
tests/test_cli_help.py fails when the two differ."""

EXPERIMENT_NAMES = (
    "ioffe2015-mnist",
    "ioffe2015-lr",
    "init-sensitivity",
    "matrix",
    "mnist-notebook",
    "cifar10-cnn",
    "santurkar2018-landscape",
    "santurkar2018-ics",
    "santurkar2018-deep-linear",
    "santurkar2018-noisy-bn",
    "small-batch",
    "train-test-stats",
    "bn-placement",
)
