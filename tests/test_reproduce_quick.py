"""End to end: every registered experiment runs --quick, records its decision rules before its
first training step, and is analyzed into labelled sections whose protocol tables are its
stored configs and whose rows are its declared rules. Needs the real datasets (skipped,
saying so, when one is missing: `bnlab data fetch mnist fashion-mnist`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import QUIET

from bnlab import data
from bnlab.report import check_symmetric, registration
from bnlab.report.verdicts import run_tests
from bnlab.reproduce import experiments, preregistered
from bnlab.reproduce.common import check_protocol
from bnlab.reproduce.runner import run_experiment

PRESENT = {s.name for s in data.available() if s.present}
# cifar10-cnn's quick run is exercised end to end through the CLI in test_reproduce_cli.py;
# the Santurkar experiments in test_reproduce_santurkar2018.py.
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
CONV = {"cifar10-cnn", "small-batch", "train-test-stats"}

pytestmark = pytest.mark.usefixtures("fastpath_off")


def test_every_experiment_is_registered_with_its_seed_plan():
    known = experiments()
    assert set(known) >= {*NEEDS, "cifar10-cnn"}
    for name in (*NEEDS, "cifar10-cnn"):
        plan = known[name].default_seeds
        if name in preregistered.CONFIRMATION:  # the confirmatory replication's plan
            assert plan == preregistered.CONFIRMATION[name] > preregistered.CONV_SEEDS
        elif name in CONV:
            assert plan == preregistered.CONV_SEEDS
        elif name == "matrix":
            assert plan["matrix/fashion-mnist/mlp"] == preregistered.MLP_SEEDS
            assert plan["matrix/fashion-mnist/convmlp"] == 8  # the power rule's count
        else:
            assert plan == preregistered.MLP_SEEDS
        for rule in known[name].rules(plan):
            assert rule.setting.split("/")[0] == name  # rows link to their experiment's page
            assert rule.first_seed == preregistered.first_seed(rule.setting)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Each experiment whose data is present, run once --quick with 2 seeds, and analyzed."""
    root = tmp_path_factory.mktemp("quick")
    out = {}
    for name, needs in NEEDS.items():
        if all(d in PRESENT for d in needs):
            directory = run_experiment(name, root, seeds=2, quick=True, ctx=QUIET)
            out[name] = (directory, experiments()[name].analyze(directory))
    return out


@pytest.mark.parametrize("name", list(NEEDS))
def test_quick_run_is_analyzed_into_labelled_sections(name, quick_runs):
    if name not in quick_runs:
        pytest.skip(
            f"dataset(s) {NEEDS[name]} not present: bnlab data fetch {' '.join(NEEDS[name])}"
        )
    _, result = quick_runs[name]
    assert result.name == name and result.quick and result.wall_time_s > 0
    assert result.sections, "an experiment contributes at least one section"
    for section in result.sections:
        assert "QUICK" in section.title and section.data_source
        check_protocol(section)  # its protocol table is the configs its runs stored
        stated = [k for k in section.protocol if k.startswith("vs. ")]
        assert stated or "source's protocol" in section.protocol
        for fig in section.figures:
            assert fig.png.is_file() and fig.svg.is_file()


@pytest.mark.parametrize("name", list(NEEDS))
def test_rows_are_the_declared_rules_recorded_before_training(name, quick_runs):
    if name not in quick_runs:
        pytest.skip(f"dataset(s) {NEEDS[name]} not present")
    directory, result = quick_runs[name]
    declared = set(experiments()[name].rules(2))
    record = registration.read(directory)
    assert {r.id for r in declared} <= set(record)
    check_symmetric(result.scorecard)
    for row in result.scorecard:
        assert row.rule in declared and row.seeds == 2
        assert record[row.rule.id]["fingerprint"] == row.rule.fingerprint()
        if row.tests is not None:  # the tests shown are the rule's on the effects shown
            assert run_tests(row.rule, row.effects) == row.tests


def test_a_protocol_row_that_disagrees_with_the_stored_config_is_refused(quick_runs):
    if "ioffe2015-mnist" not in quick_runs:
        pytest.skip("mnist not present")
    section = quick_runs["ioffe2015-mnist"][1].sections[0]
    check_protocol(section)
    tampered = replace(section, protocol={**section.protocol, "optimizer": "SGD, lr 0.02"})
    with pytest.raises(ValueError, match=r"optimizer: shows 'SGD, lr 0\.02'"):
        check_protocol(tampered)
    missing = replace(
        section, protocol={k: v for k, v in section.protocol.items() if k != "length"}
    )
    with pytest.raises(ValueError, match="length"):
        check_protocol(missing)


def test_protocol_statements_follow_the_source_projects():
    """The reproduction project gives its init (N(0, 0.01^2)); its learning-rate table names
    no optimizer; the notebook keeps its last partial batch (84 steps per epoch)."""
    from bnlab.reproduce import ioffe2015_lr, ioffe2015_mnist, mnist_notebook

    assert "N(0, 0.01^2) init" in ioffe2015_mnist.PROJECT_PROTOCOL
    assert any("names none" in d for d in ioffe2015_lr.DIFFERENCES)
    assert any("84 steps per epoch" in d for d in mnist_notebook.DIFFERENCES)
