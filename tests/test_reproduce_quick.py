"""End to end: every registered experiment runs --quick, is analyzed into report sections and
scorecard rows, and says it is a quick run. Needs the real datasets (skipped, saying so,
when one is missing: `bnlab data fetch mnist fashion-mnist`)."""

from __future__ import annotations

import pytest
from helpers import QUIET

from bnlab import data
from bnlab.report import Verdict, score
from bnlab.reproduce import experiments
from bnlab.reproduce.runner import run_experiment

PRESENT = {s.name for s in data.available() if s.present}
# cifar10-cnn's quick run is exercised end to end through the CLI in test_reproduce_cli.py.
NEEDS = {
    "ioffe2015-mnist": ("mnist",),
    "ioffe2015-lr": ("mnist",),
    "init-sensitivity": ("mnist",),
    "matrix": ("fashion-mnist", "cifar10"),
    "mnist-notebook": ("mnist",),
    "small-batch": ("cifar10",),
    "train-test-stats": ("cifar10",),
    "bn-placement": ("mnist",),
}


pytestmark = pytest.mark.usefixtures("fastpath_off")


def test_every_experiment_is_registered_and_covered_here():
    assert set(experiments()) >= {*NEEDS, "cifar10-cnn"}
    assert all(experiments()[n].default_seeds == 5 for n in (*NEEDS, "cifar10-cnn"))


@pytest.mark.parametrize("name", list(NEEDS))
def test_quick_run_is_analyzed_into_a_labelled_section(name, tmp_path):
    missing = [d for d in NEEDS[name] if d not in PRESENT]
    if missing:
        pytest.skip(f"dataset(s) {missing} not present: bnlab data fetch {' '.join(missing)}")
    out = run_experiment(name, tmp_path, seeds=2, quick=True, ctx=QUIET)
    result = experiments()[name].analyze(out)
    assert result.name == name and result.quick and result.wall_time_s > 0
    assert result.sections, "an experiment contributes at least one section"
    for section in result.sections:
        assert "QUICK" in section.title
        assert section.protocol and section.data_source
        # every protocol table says how it differs from its source, one row per difference
        stated = [k for k in section.protocol if k.startswith("vs. ")]
        assert stated or "source's protocol" in section.protocol
        assert all(section.protocol[k] for k in stated)
        for fig in section.figures:
            assert fig.png.is_file() and fig.svg.is_file()
    for row in result.scorecard:
        # the verdict shown is the one the rule gives for the interval and counts shown
        again = score(row.claim, row.experiment, row.effect, seeds=row.seeds, left_out=row.left_out)
        assert row.verdict is again.verdict
        assert row.effect.n + row.left_out == row.seeds == 2  # every seed counted once
        assert row.experiment.startswith(name)
        assert not row.why or row.verdict is Verdict.NOT_REPRODUCED  # a reason explains a failure
    if any(row.claim.id == "bn-stable-grad-norm" for row in result.scorecard):
        # the CV's trend-free counterpart and the trend sit beside it, both networks
        lines = [line[0] for s in result.sections for t in s.tables for line in t.rows]
        assert any("(trend-free)" in line for line in lines)
        assert any("after burn-in → at the end" in line for line in lines)


def test_protocol_statements_follow_the_seeds():
    """The reproduction seed gives its init (N(0, 0.01^2)); its learning-rate table names no
    optimizer; the notebook keeps its last partial batch (84 steps per epoch)."""
    from bnlab.reproduce import ioffe2015_lr, ioffe2015_mnist, mnist_notebook

    assert "unstated init" not in ioffe2015_mnist.SEED_PROTOCOL
    assert "N(0, 0.01^2) init" in ioffe2015_mnist.SEED_PROTOCOL
    assert any("names none" in d for d in ioffe2015_lr.DIFFERENCES)
    assert any("84 steps per epoch" in d for d in mnist_notebook.DIFFERENCES)
