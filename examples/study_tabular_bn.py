"""Does BN help on this CSV? A teacher's question, as a study in bnlab.study.

scikit-learn's bundled breast-cancer data (569 tumours, 30 measurements whose scales differ
by four orders of magnitude: areas near 1,000, smoothness near 0.1) is written to a CSV
when this file is loaded, then read back as a user's own CSV would be (`Data(path,
label="diagnosis")`, a quarter held out as the test split, stratified). A small MLP is
trained with BN after each hidden layer, without it, and without it on standardized inputs
(each feature z-scored with the training split's statistics): is BN better than nothing, and
about as good as simply standardizing the inputs?

    bnlab study examples/study_tabular_bn.py --out results/study-tabular      # under a minute
    bnlab study examples/study_tabular_bn.py --out results/study-tabular --resume
    bnlab report results/study-tabular

10 seeds x 3 variants x 400 steps at batch 32: under a minute on 2 CPU cores.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from torch import nn

from bnlab.study import Claim, Data, Optimizer, Study, Variant, replace_norm

CSV = Path(tempfile.gettempdir()) / "bnlab-examples" / "breast_cancer.csv"


def write_csv(path: Path) -> Path:
    """The bundled data as a plain CSV: a header, one row per tumour, the label last."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(n.replace(" ", "_") for n in bunch.feature_names), "diagnosis"])
        for row, label in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*(repr(float(v)) for v in row), bunch.target_names[label]])
    return path


def mlp() -> nn.Module:
    """30 -> 64 -> 32 -> 2, BN before each ReLU (Ioffe & Szegedy 2015, Sec. 3.2)."""
    return nn.Sequential(
        nn.Linear(30, 64, bias=False),
        nn.BatchNorm1d(64),
        nn.ReLU(),
        nn.Linear(64, 32, bias=False),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Linear(32, 2),
    )


study = Study(
    name="tabular-bn",
    model=mlp,
    data=Data(str(write_csv(CSV)), label="diagnosis", test_fraction=0.25),
    variants={
        "bn": Variant(),
        "plain": Variant(model=replace_norm("none")),
        "standardized": Variant(model=replace_norm("none"), standardize=True),
    },
    optimizer=Optimizer("sgd", lr=0.01, momentum=0.9),
    batch_size=32,
    steps=400,
    seeds=10,
    eval_every=50,
    checkpoint_every=100,
    claims=[
        Claim("test_accuracy", "bn", than="plain", direction="higher", margin=0.01),
        Claim("test_accuracy", "bn", than="standardized", direction="similar", margin=0.02),
        Claim("train_loss", "bn", than="plain", direction="lower"),
    ],
)
