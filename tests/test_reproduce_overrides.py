"""`bnlab reproduce --set`: applied to every config an experiment trains, recorded in the
manifest, shown as not the published protocol, never mixed with runs without it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bnlab.cli import main
from bnlab.engine import RunContext, Store, get_preset
from bnlab.errors import BnlabError
from bnlab.reproduce import common, overrides
from bnlab.reproduce.experiment import EXPERIMENTS, Experiment
from bnlab.reproduce.runner import run_experiment

QUIET = RunContext(device="cpu", threads=1, progress=False)
TINY = replace(get_preset("smoke"), steps=3, eval_every=3, checkpoint_every=3, norms=("none",))


def test_every_config_an_experiment_trains_gets_the_overrides(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(common, "_train_job", lambda name, cfg, *rest, **kw: trained.append(cfg))
    cells = [replace(TINY, batch_size=b) for b in (8, 16)]  # an experiment's two cells
    ctx = replace(QUIET, overrides=overrides.check(["lr=0.2", "model.init_std=0.05"]))
    for cfg in cells:
        common.train_variants("x", cfg, tmp_path, ctx, parallel=False)
    assert [(c.batch_size, c.optim.lr, c.model.init_std) for c in trained] == [
        (8, 0.2, 0.05),
        (16, 0.2, 0.05),
    ]
    common.train_variants("x", cells[0], tmp_path, QUIET, parallel=False)
    assert trained[-1].optim.lr == TINY.optim.lr  # without them: the protocol as written


@pytest.fixture
def tiny_experiment(monkeypatch):
    def run(out, seeds, quick, ctx):
        common.train_variants("tiny", replace(TINY, seeds=seeds), out, ctx, parallel=False)

    monkeypatch.setitem(
        EXPERIMENTS, "tiny", Experiment("tiny", "Tiny", run, lambda out: None, lambda seeds: ())
    )
    return "tiny"


def test_the_manifest_and_the_labels_say_so_and_a_directory_never_mixes(tmp_path, tiny_experiment):
    out = run_experiment(tiny_experiment, tmp_path, 1, False, replace(QUIET, overrides=("lr=0.2",)))
    manifest = common.read_manifest(out)
    assert list(manifest.overrides) == ["lr=0.2"]
    with Store(out) as store:
        assert json.loads(store.runs()[0]["config"])["optim"]["lr"] == 0.2
    assert "--set lr=0.2: not the published protocol" in common.quick_suffix(manifest)
    result = common.experiment_result("tiny", manifest, [_section()], [])
    assert "not the published protocol" in result.sections[0].title
    assert "lr=0.2" in result.sections[0].protocol["--set"]
    with pytest.raises(BnlabError, match="holds a run with --set"):
        run_experiment(tiny_experiment, tmp_path, 1, False, QUIET)


def _section():
    from bnlab.report import Section

    return Section(title="Tiny", protocol={}, data_source="digits")


def test_a_bad_override_fails_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["reproduce", "ioffe2015-mnist", "--quick", "--set", "nrom=batch", "--out", str(out)]
    assert main(argv) == 2
    assert "did you mean 'norms'" in capsys.readouterr().err
    assert not out.exists()
