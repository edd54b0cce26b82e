"""`bnlab config show`, names that follow what `--set` changed, lists that sweep, and the
messages for names bnlab does not know."""

from __future__ import annotations

import pytest

from bnlab.cli import main
from bnlab.engine.config import ConfigError, TrainConfig, _leaf_paths, apply_overrides
from bnlab.engine.presets import get_preset
from bnlab.engine.records import member_records
from bnlab.engine.sweep import expand


def test_config_show_prints_every_field_with_its_comment(capsys):
    assert main(["config", "show", "ioffe2015-mnist", "--set", "lr=0.2"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == set(_leaf_paths(TrainConfig))
    assert rows["optim.lr"].split()[1] == "0.2"
    assert "steps of plain BN" in rows["model.norm.renorm.warmup.start"]
    assert "added to the variance" in rows["model.norm.eps"]  # NormParams, built at import
    assert rows["batch_size"].split()[1:3] == ["60", "examples"]
    assert out.splitlines()[0] == "# run ioffe2015-mnist+lr=0.2"


def test_a_sweep_shows_one_config_per_run(capsys):
    assert main(["config", "show", "smoke", "--set", "batch_size=8,16"]) == 0
    out = capsys.readouterr().out
    assert "# run smoke+batch_size=8\n" in out and "# run smoke+batch_size=16\n" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["config", "show", "smoke", "--set", "norm=x"], "did you mean 'norms'"),
        (["config", "show", "smok"], "did you mean 'smoke'?"),
        (["train", "--preset", "smoke", "--set", "dataset=cifar100"], "did you mean 'cifar10'?"),
        (["train", "--preset", "smoke", "--set", "dataset=svhn"], "bnlab knows: mnist,"),
        (["data", "fetch", "cifar100"], "did you mean 'cifar10'?"),
        (["reproduce", "ioffe2015-mnst", "--quick"], "did you mean 'ioffe2015-mnist'?"),
        (
            ["train", "--preset", "smoke", "--set", "optim.lrs=0.1,0.2", "--set", "lr=0.3"],
            "optim.lr: 0.3 would be ignored",
        ),
        (["train", "--preset", "smoke", "--set", "steps=10,20"], "steps: expected one value"),
    ],
)
def test_errors_say_what_was_meant_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)] if argv[0] in ("train", "reproduce") else argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "fetch it with" not in err and not out.exists()


def test_an_unknown_key_lists_the_near_ones_first():
    with pytest.raises(ConfigError) as info:
        apply_overrides(TrainConfig(), ["norm=batch"])
    message = str(info.value)
    assert "'norms'" in message and "model.norm_position" in message
    assert "optim.adam_eps" not in message  # the near keys, not all 57


def test_names_follow_what_changed():
    base = get_preset("optstudy-convmlp")
    [same] = expand(base, ["steps=10", "seeds=3", "checkpoint_every=5", "hooks.every=5"])
    assert same.preset == "optstudy-convmlp"  # how long, how many, where: the same name
    [changed] = expand(base, ["dataset=cifar10", "conv_channels=16,32"])
    assert changed.preset == "optstudy-convmlp+conv_channels=16-32+dataset=cifar10"
    [named] = expand(base, ["preset=mine", "dataset=cifar10"])
    assert named.preset == "mine"
    many = expand(base, [f"model.hidden={','.join(['64'] * 9)}", "activation=tanh", "lr=0.3"])
    assert many[0].preset.startswith("optstudy-convmlp+hidden+activation+lr-")
    assert len(many[0].preset) <= 64


def test_lists_sweep_one_run_per_value_and_rates_make_a_grid():
    base = get_preset("smoke")
    runs = expand(base, ["batch_size=8,16", "init_std=0.1,0.2"])
    assert [(c.batch_size, c.model.init_std) for c in runs] == [
        (8, 0.1),
        (8, 0.2),
        (16, 0.1),
        (16, 0.2),
    ]
    assert len({c.preset for c in runs}) == 4
    [grid] = expand(base, ["optim.lr=0.01,0.1"])
    assert grid.optim.lrs == (0.01, 0.1) and grid.members == 2 * grid.seeds


def test_a_batch_size_sweep_trains_one_run_per_value_into_one_directory(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["train", "--preset", "smoke", "--steps", "3", "--quiet", "--set", "norms=none"]
    assert main([*argv, "--set", "batch_size=8,16", "--out", str(out)]) == 0
    records = member_records(out)
    assert {r["run_id"]: r["batch_size"] for r in records} == {
        "smoke+batch_size=8/none": 8,
        "smoke+batch_size=16/none": 16,
    }
