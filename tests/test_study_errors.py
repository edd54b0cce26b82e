"""Bad studies fail before any work with a `BnlabError` that names the thing, and nothing is
written: a model whose output does not match the labels, data with a NaN or a label outside
the classes, a variant that does not change the model, a claim naming an unknown variant or
metric, a claim repeated or decided on one seed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from torch import nn

import bnlab
from bnlab.engine import RunContext
from bnlab.errors import BnlabError
from bnlab.study import Claim, Data, Study, Variant, replace_norm, run

QUIET = RunContext(progress=False)


def _arrays(n: int = 60, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype(np.float32), np.arange(n) % classes


def _mlp(out: int = 3, bn: bool = True):
    def build():
        norm = [bnlab.BatchNorm1d(8)] if bn else []
        return nn.Sequential(nn.Linear(6, 8), *norm, nn.ReLU(), nn.Linear(8, out))

    return build


def _study(**kw) -> Study:
    fields = {
        "name": "bad",
        "model": _mlp(),
        "data": _arrays(),
        "variants": {"bn": Variant(), "none": Variant(model=replace_norm("none"))},
        "steps": 3,
        "seeds": 2,
        "batch_size": 8,
    }
    return Study(**{**fields, **kw})


def _refused(tmp_path, match: str, **kw) -> None:
    out = tmp_path / "out"
    with pytest.raises(BnlabError, match=match):
        run(_study(**kw), out, QUIET)
    assert not out.exists(), f"{out} was written"


def test_output_that_does_not_match_the_labels(tmp_path):
    _refused(tmp_path, r"'bn'.*output is \(8, 5\).*expected \(8, 3\).*3 classes", model=_mlp(5))


def test_a_model_that_fails_on_the_data(tmp_path):
    def wrong_width():
        return nn.Sequential(nn.Linear(7, 3))

    _refused(tmp_path, r"fails on a batch of 8 .*\(8, 6\)", model=wrong_width)


def test_data_with_a_nan(tmp_path):
    x, y = _arrays()
    x[17, 4] = np.nan
    _refused(tmp_path, r"NaN or inf at example \d+, feature 4", data=(x, y))


def test_csv_with_a_missing_value_names_line_and_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,x\n3,,y\n4,5,x\n")
    _refused(tmp_path, r"d.csv, line 3, column 'b': got ''", data=Data(str(path)))
    _refused(tmp_path, r"no column 'target'.*a, b, label", data=Data(str(path), label="target"))


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (lambda y: y - 1, r"label -1.0? of example 0 is not a class index"),
        (lambda y: y + 0.5, r"label 0.5 of example 0 is not a class index"),
    ],
    ids=["negative", "fraction"],
)
def test_labels_that_are_not_classes(tmp_path, labels, match):
    x, y = _arrays()
    _refused(tmp_path, match, data=(x, labels(y.astype(np.float64))))


def test_a_test_label_no_training_example_has(tmp_path):
    (x, y), (xt, yt) = _arrays(), _arrays(20)
    yt[5] = 7
    _refused(
        tmp_path, r"test split has label 7, which no training example has", data=((x, y), (xt, yt))
    )


def test_a_variant_that_does_not_change_the_model(tmp_path):
    variants = {"plain": Variant(), "gn": Variant(model=replace_norm("group", groups=2))}
    _refused(
        tmp_path,
        r"'gn'.*replace_norm\('group', groups=2\) does not change the model",
        model=_mlp(bn=False),
        variants=variants,
    )


def test_two_variants_that_train_the_same_thing(tmp_path):
    variants = {"a": Variant(lr=0.1), "b": Variant()}  # 0.1 is the default lr
    _refused(tmp_path, r"'a' and 'b' train the same thing", variants=variants)


def test_a_batch_larger_than_the_data(tmp_path):
    _refused(tmp_path, r"batch_size 100 is larger than the 48 training", batch_size=100)


def test_claims_naming_an_unknown_variant_or_metric():
    with pytest.raises(BnlabError, match=r"Claim.than: unknown variant 'gn'.*bn, none"):
        _study(claims=[Claim("test_accuracy", "bn", than="gn")])
    with pytest.raises(BnlabError, match=r"Claim.metric: got 'accuracy', expected one of test_"):
        Claim("accuracy", "bn", than="none")
    with pytest.raises(BnlabError, match=r"direction 'similar' needs a margin"):
        Claim("test_loss", "bn", than="none", direction="similar")
    with pytest.raises(BnlabError, match=r"'similar or higher' needs a margin > 0, got 0"):
        Claim("test_accuracy", "bn", than="none", direction="similar or higher", margin=0)
    with pytest.raises(BnlabError, match=r"Study.claims: a claim repeats"):
        _study(claims=[Claim("test_accuracy", "bn", than="none")] * 2)


def test_a_claim_with_one_seed(tmp_path):
    claim = Claim("test_accuracy", "bn", than="none")
    _refused(
        tmp_path,
        r"seeds: got 1 \(Study.seeds or --seeds\), expected at least 2",
        claims=[claim],
        seeds=1,
    )


def test_the_cli_refuses_a_bad_study_file_and_writes_nothing(tmp_path):
    path = tmp_path / "study.py"
    path.write_text(
        "import numpy as np\nfrom torch import nn\nfrom bnlab.study import Study, Variant\n"
        "x = np.zeros((40, 4), np.float32); y = np.arange(40) % 2\n"
        "study = Study('s', lambda: nn.Linear(4, 3), (x, y), {'a': Variant()}, batch_size=8)\n"
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "bnlab", "study", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "bnlab study: error: Study.variants['a']: the model's output is (8, 3)" in done.stderr
    assert not out.exists()
