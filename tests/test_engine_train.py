"""The training loop: members never interact, runs are deterministic, bad configs fail early."""

import json
import math
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import QUIET

from bnlab.cli import main
from bnlab.engine import RunContext, checkpoint
from bnlab.engine.config import ConfigError, OptimConfig, apply_overrides, validate
from bnlab.engine.presets import PRESETS, get_preset
from bnlab.engine.train import checkpoint_path, train
from bnlab.errors import BnlabError


def _smoke(**changes):
    cfg = replace(get_preset("smoke"), steps=30, eval_every=10, checkpoint_every=10)
    return replace(cfg, **changes)


def _rows(out: Path, table: str, run_id: str, member: int | None = None) -> list[tuple]:
    db = sqlite3.connect(out / "bnlab.sqlite")
    sql = f"SELECT * FROM {table} WHERE run_id = ?" + (
        " AND member = ?" if member is not None else ""
    )
    args = (run_id,) if member is None else (run_id, member)
    rows = sorted(r[1:] for r in db.execute(sql, args))
    db.close()
    return rows


def _final_flat(out: Path, run_id: str) -> dict[str, torch.Tensor]:
    return checkpoint.load(checkpoint_path(out, run_id))["model"]


@pytest.mark.parametrize(
    "optim",
    [OptimConfig(name="sgd", momentum=0.9, weight_decay=1e-3), OptimConfig(name="adam", lr=0.01)],
    ids=["sgd", "adam"],
)
@pytest.mark.parametrize("conv", [(), (6, 4)], ids=["mlp", "conv"])  # per-member + grouped conv
def test_members_never_interact(tmp_path, optim, conv):
    """A stack of K=4 (2 seeds x 2 lrs) equals 4 separate one-member runs, member by member."""
    lrs = (0.3, 0.05) if optim.name == "sgd" else (0.01, 0.002)
    cfg = _smoke(dtype="float64", norms=("batch",), seed=3, seeds=2, optim=replace(optim, lrs=lrs))
    cfg = replace(cfg, model=replace(cfg.model, conv_channels=conv))
    _check_members_never_interact(tmp_path, cfg, optim)


# the other norm layers, on a conv body; group: 2 groups of the 6/4 channels, ghost: 2 chunks,
# renorm: through its warm-up. ("layer" and "instance" are the same StackedGroupNorm with
# G = 1 and G = C; every layer equals its library module member by member in
# test_engine_norm_parity.py.)
OTHER_NORMS = {
    "group": ["model.norm.group.groups=2"],
    "renorm": [
        "model.norm.renorm.r_max=1.5",
        "model.norm.renorm.d_max=0.5",
        "model.norm.renorm.warmup.start=3",
        "model.norm.renorm.warmup.r_max_step=9",
        "model.norm.renorm.warmup.d_max_step=3",
    ],
    "ghost": ["model.norm.ghost.virtual_batch_size=16"],
}


@pytest.mark.parametrize("norm", list(OTHER_NORMS))
def test_members_never_interact_for_every_norm_layer(tmp_path, norm):
    optim = OptimConfig(name="sgd", momentum=0.9)
    cfg = _smoke(dtype="float64", norms=(norm,), seed=3, seeds=2, optim=replace(optim, lr=0.3))
    cfg = apply_overrides(cfg, ["model.conv_channels=6,4", *OTHER_NORMS[norm]])
    cfg = replace(cfg, steps=12, eval_every=6, checkpoint_every=6)
    _check_members_never_interact(tmp_path, cfg, optim)


def _check_members_never_interact(tmp_path, cfg, optim):
    norm = cfg.norms[0]
    run = f"smoke/{norm}"
    train(cfg, tmp_path / "stack", ctx=QUIET)
    stack_state = _final_flat(tmp_path / "stack", run)
    for k in range(cfg.members):
        single = replace(
            cfg, seed=cfg.member_seed(k), seeds=1, optim=replace(optim, lr=cfg.member_lr(k), lrs=())
        )
        out = tmp_path / f"single{k}"
        train(single, out, ctx=QUIET)
        for table in ("train_metrics", "metrics"):
            ours, ref = (
                _rows(tmp_path / "stack", table, run, k),
                _rows(out, table, run, 0),
            )
            assert len(ours) == len(ref) > 0
            for a, b in zip(ours, ref, strict=True):
                assert a[1] == b[1]  # step
                assert [v for v in a if isinstance(v, str)] == [v for v in b if isinstance(v, str)]
                values_a = [v for v in a[2:] if isinstance(v, float)]
                values_b = [v for v in b[2:] if isinstance(v, float)]
                torch.testing.assert_close(values_a, values_b, rtol=1e-9, atol=1e-12)
        single_state = _final_flat(out, run)
        for name, value in stack_state.items():
            if name.endswith("num_batches_tracked"):
                continue
            torch.testing.assert_close(value[k], single_state[name][0], rtol=1e-9, atol=1e-12)


def test_runs_are_deterministic_given_seeds(tmp_path):
    cfg = _smoke(seeds=2)
    train(cfg, tmp_path / "a", ctx=QUIET)
    train(cfg, tmp_path / "b", ctx=QUIET)
    train(replace(cfg, seed=7), tmp_path / "c", ctx=QUIET)
    for run_id in ("smoke/batch", "smoke/none"):
        a, b = (
            _rows(tmp_path / "a", "train_metrics", run_id),
            _rows(tmp_path / "b", "train_metrics", run_id),
        )
        assert a == b
        assert a != _rows(tmp_path / "c", "train_metrics", run_id)
        assert _rows(tmp_path / "a", "metrics", run_id) == _rows(tmp_path / "b", "metrics", run_id)


def test_every_step_is_logged_once_with_layer_norms(tmp_path):
    cfg = _smoke(seeds=2, log_every=3)
    train(cfg, tmp_path, ctx=QUIET)
    rows = _rows(tmp_path, "train_metrics", "smoke/batch")
    assert [(r[0], r[1]) for r in rows] == [(k, s) for k in range(2) for s in range(3, 31, 3)]
    layer_norms = torch.frombuffer(bytearray(rows[0][6]), dtype=torch.float64)
    assert layer_norms.shape == (5,)  # fc1, norm1, fc2, norm2, out
    torch.testing.assert_close(float(layer_norms.square().sum().sqrt()), rows[0][4])
    metric_rows = _rows(tmp_path, "metrics", "smoke/batch")
    act_steps = {r[1] for r in metric_rows if r[2] == "act/act2/mean"}
    assert act_steps == {10, 20, 30}  # hooks.every; evaluation forwards are not recorded
    names = {r[2] for r in metric_rows}
    assert {"test_loss", "test_accuracy", "act/act2/mean", "act/act2/u0/p15"} <= names


def test_every_preset_validates():
    """Every preset passes validation unchanged, under its own name; the same preset with a
    bad field does not (so validation really ran on it)."""
    for name in PRESETS:
        cfg = get_preset(name)
        assert validate(cfg, check_data=False) is cfg and cfg.preset == name
        with pytest.raises(ConfigError, match="batch_size"):
            validate(replace(cfg, batch_size=0), check_data=False)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["nosuchkey=1"], "nosuchkey"),
        (["lr=fast"], "optim.lr"),
        (["steps=1.5"], "steps"),
        (["lr=-0.1"], "optim.lr"),
        (["optim.lrs=0.1,-1"], "optim.lr"),
        (["batch_size=1"], "batch_size"),
        (["norms=batch,switchable"], "norms"),  # not a norm layer here
        (["activation=softplus"], "model.activation"),
        (["hooks.layers=fc1"], "hooks.layers"),
        (["augment=maybe"], "data.augment"),
    ],
)
def test_bad_configs_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(apply_overrides(get_preset("smoke"), overrides), check_data=False)


def test_batch_size_one_is_fine_without_bn(tmp_path):
    """Batch statistics need 2 examples; a network without BN trains on single examples."""
    cfg = apply_overrides(_smoke(steps=3, eval_every=3, checkpoint_every=3), ["batch_size=1"])
    with pytest.raises(ConfigError, match="batch_size"):
        validate(cfg, check_data=False)  # with BN
    cfg = replace(cfg, norms=("none",))
    assert validate(cfg, check_data=False) is cfg
    train(cfg, tmp_path, ctx=QUIET)
    rows = _rows(tmp_path, "train_metrics", "smoke/none")
    assert [r[1] for r in rows] == [1, 2, 3] and all(math.isfinite(r[2]) for r in rows)


def test_missing_dataset_fails_before_any_write(tmp_path, monkeypatch):
    import bnlab.data

    missing = bnlab.data.DatasetStatus("digits", (), {}, False, False, "")
    monkeypatch.setattr(bnlab.data, "status", lambda name, data_dir=None: missing)
    monkeypatch.setattr(bnlab.data, "available", lambda data_dir=None: [])
    with pytest.raises(ConfigError, match=r"data\.dataset"):
        train(_smoke(), tmp_path / "out", ctx=QUIET)
    assert not (tmp_path / "out").exists()


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        get_preset("ioffe2016")


def test_cli_validates_the_config_once(tmp_path, capsys, monkeypatch):
    """`bnlab train` leaves validation to `train`, which does it before any work or write."""
    from bnlab.engine import config

    calls = []
    check_model = config._validate_model
    monkeypatch.setattr(config, "_validate_model", lambda m: calls.append(m) or check_model(m))
    out = tmp_path / "out"
    argv = ["train", "--preset", "smoke", "--steps", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 0 and (out / "bnlab.sqlite").is_file()
    assert len(calls) == 1
    bad = tmp_path / "bad"
    assert main([*argv[:3], "--set", "activation=softplus", "--out", str(bad)]) == 2
    assert not bad.exists()
    assert "model.activation: expected one of sigmoid, relu" in capsys.readouterr().err


def test_evaluation_does_not_depend_on_the_chunk_size():
    from bnlab.engine.data import load_data
    from bnlab.engine.train import build_stack, eval_chunk, evaluate

    cfg = replace(get_preset("smoke"), dtype="float64", seeds=3)
    cfg = replace(cfg, model=replace(cfg.model, conv_channels=(6, 4)))
    data = load_data(cfg.data)
    stack = build_stack(cfg, "batch", data)
    for _ in range(5):  # running statistics away from their initial values
        stack.model(stack.batches.next()[0].double())
    whole = evaluate(stack.model, data.x_test, data.y_test, chunk=len(data.y_test))
    assert stack.model.training  # the mode it was in is restored
    for chunk in (1, 7, None):
        loss, acc = evaluate(stack.model, data.x_test, data.y_test, chunk=chunk)
        torch.testing.assert_close(loss, whole[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(acc, whole[1], rtol=0, atol=0)
    # the default chunk keeps the largest activation within the budget, whatever the test set
    per_image = cfg.members * stack.model.widest * 8  # float64 bytes
    assert stack.model.widest == 6 * 8 * 8  # conv1's output, per image
    chunk = eval_chunk(stack.model)
    assert chunk * per_image <= 64 * 2**20 < (chunk + 1) * per_image


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [["train", "--preset", "smoke"], ["reproduce"]])
def test_asking_for_cuda_without_it_fails_before_any_work(tmp_path, capsys, command):
    if command == ["reproduce"]:
        command = ["reproduce", "ioffe2015-mnist", "--quick"]
    out = tmp_path / "o"
    code = main([*command, "--device", "cuda", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "CUDA" in err and "device" in err
    assert not out.exists()


def test_a_run_resumes_on_another_device_setting(tmp_path):
    """`device` is where a run trains, not what it is: --resume accepts a different value."""
    cfg = _smoke(steps=20, checkpoint_every=10)
    cpu = RunContext(device="cpu", threads=1, progress=False)
    train(replace(cfg, steps=10), tmp_path, cpu)  # stopped after its first checkpoint
    with pytest.raises(BnlabError, match="differs"):
        changed = replace(cfg, steps=10, optim=replace(cfg.optim, lr=0.2))
        train(changed, tmp_path, cpu, resume=True)
    train(replace(cfg, steps=10), tmp_path, RunContext(progress=False), resume=True)


def test_a_run_stored_before_a_field_existed_resumes(tmp_path):
    """A config stored by an earlier bnlab lacks fields added since; they take their defaults,
    so the run is the same run (a changed value is still refused, above)."""
    cfg = _smoke(steps=10, checkpoint_every=10)
    train(cfg, tmp_path, ctx=QUIET)
    db = sqlite3.connect(tmp_path / "bnlab.sqlite")
    for rid, stored in db.execute("SELECT run_id, config FROM runs").fetchall():
        old = json.loads(stored)
        del old["hooks"]["hist_range"], old["log_every"]  # as if written before they existed
        db.execute("UPDATE runs SET config = ? WHERE run_id = ?", (json.dumps(old), rid))
    db.commit()
    db.close()
    train(cfg, tmp_path, resume=True, ctx=QUIET)  # found finished, not refused
    with pytest.raises(BnlabError, match="differs"):
        train(replace(cfg, log_every=2), tmp_path, resume=True, ctx=QUIET)


def test_a_kept_last_batch_is_one_more_step_per_epoch_as_a_dataloader_counts(tmp_path):
    """drop_last=False: an epoch has as many steps as torch's DataLoader gives batches, the
    last one smaller; the BN network trains on it like on any other (mnist-notebook's case)."""
    from torch.utils.data import DataLoader

    from bnlab.engine.data import load_data

    dropped = _smoke(epochs=1, batch_size=32, eval_every=0, checkpoint_every=100, norms=("batch",))
    dropped = replace(dropped, data=replace(dropped.data, train_subset=200))
    cfg = replace(dropped, drop_last=False)
    n = len(load_data(cfg.data).y_train)
    assert n % 32 == 8  # a real partial batch, of more than one sample
    train(cfg, tmp_path, ctx=QUIET)
    rows = _rows(tmp_path, "train_metrics", "smoke/batch", member=0)
    assert [r[1] for r in rows] == list(range(1, len(DataLoader(range(n), batch_size=32)) + 1))
    assert all(math.isfinite(r[2]) for r in rows)  # train_loss, the last batch's included
    train(dropped, tmp_path / "dropped", ctx=QUIET)
    assert len(_rows(tmp_path / "dropped", "train_metrics", "smoke/batch", 0)) == n // 32


def test_a_kept_last_batch_of_one_sample_is_refused_with_bn_only(tmp_path):
    cfg = _smoke(batch_size=10, drop_last=False)
    cfg = replace(cfg, data=replace(cfg.data, train_subset=1_001))  # 100 x 10 + 1
    with pytest.raises(ConfigError, match=r"drop_last: .* last batch of 1 sample"):
        validate(cfg)
    assert validate(replace(cfg, norms=("none",))) is not None
    assert validate(replace(cfg, drop_last=True)) is not None


def test_protocols_match_their_seeds():
    """The notebook seed's DataLoader keeps its last batch: 84 steps per epoch on 5,000 images
    at batch 60; the optimization-study seed trains at "typically 128"."""
    from torch.utils.data import DataLoader

    notebook = get_preset("mnist-notebook")
    assert not notebook.drop_last and notebook.data.train_subset == 5_000
    assert len(DataLoader(range(5_000), batch_size=notebook.batch_size)) == 84
    assert get_preset("optstudy-mlp").batch_size == get_preset("optstudy-convmlp").batch_size == 128


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("data.train_subset=1501", r"data\.train_subset: got 1,501, .* only 1,500 train"),
        ("data.test_subset=298", r"data\.test_subset: got 298, .* only 297 test"),
        ("batch_size=1501", r"batch_size: got 1,501, expected at most the 1,500"),
    ],
)
def test_sizes_beyond_the_dataset_fail_before_any_write(tmp_path, override, field):
    """digits has 1,500 training and 297 test images: asking for more is a user's error."""
    with pytest.raises(ConfigError, match=field):
        validate(apply_overrides(get_preset("smoke"), [override]))
    out = tmp_path / "out"
    assert main(["train", "--preset", "smoke", "--set", override, "--out", str(out)]) == 2
    assert not out.exists()
