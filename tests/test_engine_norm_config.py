"""`ModelConfig.norm`: built from the norm registry, overridable with `--set`, validated by
each registry entry, and read back from configs stored by earlier versions (flat fields)
with the values they trained with, never today's defaults."""

from __future__ import annotations

import json
import pickle
import sqlite3
from dataclasses import fields, replace

import pytest

import bnlab
from bnlab.engine.config import (
    ConfigError,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    to_dict,
    validate,
)
from bnlab.engine.norms import NORM_LAYERS, NormParams, params_key
from bnlab.engine.presets import get_preset
from bnlab.engine.replay import REPLAY_CONTEXT, replay
from bnlab.engine.train import train
from bnlab.engine.upgrade import FLAT_NORM_FIELDS
from bnlab.errors import BnlabError

# A ModelConfig as bnlab stored it before the norm parameters moved into `model.norm`,
# every norm field away from its default.
FLAT_MODEL = {
    "conv_channels": [],
    "pool_every": 1,
    "hidden": [32, 32],
    "num_classes": 10,
    "activation": "sigmoid",
    "norm_position": "before",
    "init": "gaussian",
    "init_std": 0.1,
    "bn_momentum": 0.05,
    "bn_eps": 1e-3,
    "bn_kernel": "bnlab",
    "compile_norm": False,
    "noise_mean_max": 0.25,
    "noise_std_min": 0.125,
    "noise_std_max": 0.75,
    "norm_groups": 8,
    "ghost_batch_size": 4,
    "renorm_r_max": 2.0,
    "renorm_d_max": 1.5,
    "renorm_warmup": 10,
    "renorm_r_ramp": 30,
    "renorm_d_ramp": 5,
}


def test_norm_params_hold_one_section_per_registry_entry_with_parameters():
    names = {f.name for f in fields(NormParams)}
    assert {"eps", "momentum", "kernel", "compiled"} <= names
    for name, spec in NORM_LAYERS.items():
        if spec.params is not None:
            assert isinstance(getattr(NormParams(), params_key(name)), spec.params)
    cfg = TrainConfig()
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # executors send configs to processes
    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_an_earlier_flat_config_loads_with_its_own_values():
    m = from_dict(ModelConfig, FLAT_MODEL).norm
    assert (m.eps, m.momentum, m.kernel, m.compiled) == (1e-3, 0.05, "bnlab", False)
    assert m.batch_noisy == bnlab.norms.NoiseParams(0.25, 0.125, 0.75)
    assert m.group.groups == 8 and m.ghost.virtual_batch_size == 4
    assert (m.renorm.r_max, m.renorm.d_max) == (2.0, 1.5)
    # 10 steps of BN, r_max reached 30 steps later, d_max 5 steps later
    assert m.renorm.warmup == bnlab.RenormWarmup(start=10, r_max_step=40, d_max_step=15)
    for step in (0, 9, 10, 12, 25, 40, 100):  # the schedule the old fields described
        ramp_r, ramp_d = min(max(step - 10, 0) / 30, 1.0), min(max(step - 10, 0) / 5, 1.0)
        assert m.renorm.warmup.limits(step, 2.0, 1.5) == (1.0 + ramp_r, 1.5 * ramp_d)


def test_a_stored_config_with_doubled_or_bad_norm_fields_is_refused():
    with pytest.raises(BnlabError, match=r"both model\.norm and the earlier flat fields"):
        from_dict(ModelConfig, {**FLAT_MODEL, "norm": {}})
    with pytest.raises(ConfigError, match=r"model\.norm\.group\.groups: .* got 0"):
        from_dict(TrainConfig, {"model": {**FLAT_MODEL, "norm_groups": 0}})


def test_a_run_stored_with_flat_fields_resumes_and_replays(tmp_path):
    """The results database of an earlier version: its configs upgrade to the same run."""
    cfg = replace(get_preset("smoke"), steps=4, eval_every=2, checkpoint_every=4)
    cfg = apply_overrides(cfg, ["norms=batch", "model.norm.momentum=0.05"])
    train(cfg, tmp_path, ctx=REPLAY_CONTEXT)
    db = sqlite3.connect(tmp_path / "bnlab.sqlite")
    (stored,) = db.execute("SELECT config FROM runs").fetchone()
    old = json.loads(stored)
    norm = old["model"].pop("norm")
    for key, path in FLAT_NORM_FIELDS.items():  # written back as the earlier version did
        value = norm
        for name in path:
            value = value[name]
        old["model"][key] = value
    warmup = norm["renorm"]["warmup"]
    old["model"].update(
        renorm_warmup=warmup["start"],
        renorm_r_ramp=warmup["r_max_step"] - warmup["start"],
        renorm_d_ramp=warmup["d_max_step"] - warmup["start"],
    )
    db.execute("UPDATE runs SET config = ?", (json.dumps(old),))
    db.commit()
    db.close()
    train(cfg, tmp_path, ctx=REPLAY_CONTEXT, resume=True)  # found finished: the same run
    with pytest.raises(BnlabError, match="differs"):
        changed = apply_overrides(cfg, ["model.norm.momentum=0.1"])
        train(changed, tmp_path, ctx=REPLAY_CONTEXT, resume=True)
    (record,) = replay(tmp_path, steps=4)
    assert record.identical, record.difference


@pytest.mark.parametrize(
    ("override", "value"),
    [
        ("model.norm.group.groups=8", ("group", "groups", 8)),
        ("groups=2", ("group", "groups", 2)),
        ("model.norm.ghost.virtual_batch_size=4", ("ghost", "virtual_batch_size", 4)),
        ("model.norm.renorm.r_max=2.5", ("renorm", "r_max", 2.5)),
        ("model.norm.batch_noisy.std_max=2", ("batch_noisy", "std_max", 2.0)),
        ("model.norm.kernel=bnlab", (None, "kernel", "bnlab")),
    ],
)
def test_set_reaches_every_norm_parameter(override, value):
    section, name, expected = value
    norm = apply_overrides(TrainConfig(), [override]).model.norm
    assert getattr(getattr(norm, section) if section else norm, name) == expected


def test_set_moves_the_warmup_together_and_names_old_fields():
    keys = ("start=5", "r_max_step=40", "d_max_step=25")
    cfg = apply_overrides(TrainConfig(), [f"model.norm.renorm.warmup.{k}" for k in keys])
    assert cfg.model.norm.renorm.warmup == bnlab.RenormWarmup(5, 40, 25)
    with pytest.raises(ConfigError, match=r"warmup\.r_max_step: expected a step >= start"):
        apply_overrides(TrainConfig(), ["model.norm.renorm.warmup.start=5"])
    with pytest.raises(ConfigError, match=r"norm_groups: this field is now model\.norm\.group"):
        apply_overrides(TrainConfig(), ["model.norm_groups=8"])
    with pytest.raises(ConfigError, match=r"ghost_batch_size: .*virtual_batch_size"):
        apply_overrides(TrainConfig(), ["ghost_batch_size=8"])


def _fit(norm: str, *overrides: str) -> TrainConfig:
    base = ["model.conv_channels=8", "model.hidden=12", "batch_size=32", f"norms={norm}"]
    return apply_overrides(TrainConfig(), base + list(overrides))


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: _fit("group", "groups=5"), r"model\.norm\.group\.groups: 5 groups"),
        (lambda: _fit("group", "groups=0"), r"model\.norm\.group\.groups"),
        (lambda: _fit("ghost", "virtual_batch_size=5"), r"model\.norm\.ghost\.virtual_batch_"),
        (lambda: _fit("instance"), r"model\.hidden"),
        (lambda: _fit("renorm", "model.norm.renorm.r_max=0.5"), r"model\.norm\.renorm\.r_max"),
        (lambda: _fit("renorm", "model.norm.renorm.d_max=-1"), r"model\.norm\.renorm\.d_max"),
        (lambda: _fit("batch", "model.norm.eps=0"), r"model\.norm\.eps"),
        (lambda: _fit("batch", "model.norm.momentum=2"), r"model\.norm\.momentum"),
        (lambda: _fit("batch", "model.norm.kernel=cudnn"), r"model\.norm\.kernel"),
    ],
)
def test_bad_norm_parameters_are_refused_naming_the_field(make, field):
    with pytest.raises(ConfigError, match=field):
        validate(make(), check_data=False)


def test_good_norm_parameters_validate():
    for cfg in (_fit("group", "groups=4"), _fit("ghost", "virtual_batch_size=8"), _fit("layer")):
        validate(cfg, check_data=False)
    validate(_fit("instance", "model.hidden="), check_data=False)
    # a parameter that does not fit is only refused where its norm layer is used
    validate(_fit("batch", "groups=5", "virtual_batch_size=5"), check_data=False)
