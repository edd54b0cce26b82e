"""Probing must not disturb training: bit-identical state after a probe, and a run with probes
gives bitwise the same metrics and final model as a run without."""

import sqlite3
from dataclasses import replace

import pytest
import torch
from helpers import QUIET

from bnlab.analysis.probes import AnalysisProbe, ProbeConfig
from bnlab.engine import checkpoint
from bnlab.engine.config import OptimConfig
from bnlab.engine.data import load_data
from bnlab.engine.presets import get_preset
from bnlab.engine.train import build_stack, checkpoint_path, train, train_step

ALL = ProbeConfig(every=5, landscape=True, ics=True, curvature=True)


def _cfg(optim: OptimConfig, norms=("batch-noisy", "batch", "none")):
    cfg = replace(get_preset("smoke"), steps=12, eval_every=6, checkpoint_every=6, seeds=2)
    return replace(cfg, optim=optim, norms=norms)


def _everything(stack) -> dict:
    model = stack.model
    state = {"flat": model.flat.clone(), "grad": model.flat_grad.clone()}
    state.update({f"buf:{n}": b.clone() for n, b in model.named_buffers()})
    for n, m in model.named_modules():
        for i, g in enumerate(getattr(m, "generators", [])):
            state[f"gen:{n}:{i}"] = g.get_state()
    for key, value in stack.optimizer.state_dict().items():
        if isinstance(value, torch.Tensor):
            state[f"opt:{key}"] = value.clone()
        else:
            state[f"opt:{key}"] = torch.tensor(value)
    state["rng"] = torch.get_rng_state()
    return state


@pytest.mark.parametrize(
    "optim",
    [OptimConfig(lr=0.5, momentum=0.9, weight_decay=1e-3), OptimConfig(name="adam", lr=0.01)],
)
def test_probe_leaves_the_stack_bit_identical(optim):
    cfg = _cfg(optim)
    data = load_data(cfg.data)
    stack = build_stack(cfg, "batch-noisy", data)
    for _ in range(3):  # non-trivial optimizer state and running statistics
        xb, yb = stack.batches.next()
        train_step(stack.model, stack.optimizer, xb, yb)
    xb, yb = stack.batches.next()
    before = _everything(stack)
    rows = AnalysisProbe(ALL)(stack, 4, xb, yb)
    after = _everything(stack)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), f"{key} changed by the probe"
    names = {r[2] for r in rows}
    assert {"landscape/loss_variation", "landscape/beta_smoothness", "curvature"} <= names
    assert {"ics_l2/fc2", "ics_cos/out"} <= names and len({r[0] for r in rows}) == 2


def _table(out, table):
    db = sqlite3.connect(out / "bnlab.sqlite")
    rows = sorted(db.execute(f"SELECT * FROM {table}"))
    db.close()
    return rows


def test_training_with_probes_is_bitwise_the_same(tmp_path):
    cfg = _cfg(OptimConfig(lr=0.5, momentum=0.9))
    plain, probed = tmp_path / "plain", tmp_path / "probed"
    train(cfg, plain, ctx=QUIET)
    train(cfg, probed, ctx=QUIET, probes=[AnalysisProbe(ALL)])
    assert _table(plain, "train_metrics") == _table(probed, "train_metrics")
    probe_names = ("landscape/", "ics_", "curvature")
    extra = [r for r in _table(probed, "metrics") if not r[3].startswith(probe_names)]
    assert _table(plain, "metrics") == extra  # test metrics and activation percentiles
    for norm in cfg.norms:
        rid = f"{cfg.preset}/{norm}"
        a = checkpoint.load(checkpoint_path(plain, rid))["model"]
        b = checkpoint.load(checkpoint_path(probed, rid))["model"]
        for key, value in a.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[key]), f"{rid}: {key} differs"


def test_bad_interval_is_rejected():
    with pytest.raises(ValueError, match="every"):
        ProbeConfig(every=0)
