"""A study's members never interact: a user-defined nn.Module with bnlab's BN, trained
through the vmapped path, equals K separate one-model runs (plain torch.nn, torch.optim,
float64), member by member: losses, gradients, running statistics and weights, step by step.
Member k of a stack, run through the store, is a one-member stack of seed k, and models vmap
cannot train (dropout) train one member at a time, each on its own random stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close
from torch import nn

import bnlab
from bnlab.data import StackedBatches
from bnlab.engine import RunContext
from bnlab.study import Optimizer, Study, Variant, run
from bnlab.study.checks import preflight
from bnlab.study.data import load_data
from bnlab.study.members import build_member
from bnlab.study.vmapped import VmappedMembers

TOL = {"rtol": 1e-10, "atol": 1e-12}
SEEDS = [3, 4, 5]

QUIET = RunContext(progress=False)


class Net(nn.Module):
    """A custom forward: conv, bnlab BN, a skip connection, pooling, linear, bnlab BN."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = bnlab.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 16, bias=False)
        self.bn_fc = bnlab.BatchNorm1d(16, momentum=None)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        h = F.max_pool2d(h + torch.tanh(self.conv2(h)), 2)  # (B, 4, 4, 4)
        return self.out(torch.sigmoid(self.bn_fc(self.fc(h.flatten(1)))))


def _arrays(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean((1, 2)) > 0).astype(np.int64) + (x[:, 0, 4:].mean((1, 2)) > 0)
    return x, y


def _study(model=Net, dtype: str = "float64", **kw) -> Study:
    opt = Optimizer("sgd", lr=0.2, momentum=0.9, weight_decay=1e-3)
    return Study(
        "members",
        model,
        _arrays(),
        {"v": Variant()},
        optimizer=opt,
        batch_size=10,
        seeds=len(SEEDS),
        seed=SEEDS[0],
        dtype=dtype,
        **kw,
    )


def test_vmapped_members_equal_separate_one_model_runs():
    study = _study()
    data = load_data(study.data).to(torch.device("cpu"), torch.float64)
    assert preflight(study, data, torch.device("cpu"))["v"].mode == "vmapped"
    stack = VmappedMembers(
        [build_member(study, "v", s) for s in SEEDS], study.optimizer, 0.2, "cpu"
    )
    singles = [build_member(study, "v", s) for s in SEEDS]
    opts = [torch.optim.SGD(m.parameters(), 0.2, momentum=0.9, weight_decay=1e-3) for m in singles]
    batches = StackedBatches(data.x_train, data.y_train, SEEDS, 10)
    names = list(stack.params)
    for step in range(4):
        xb, yb = batches.next()
        losses, _ = stack.step(xb, yb, 0.2)
        for k, (model, opt) in enumerate(zip(singles, opts, strict=True)):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb[k]), yb[k])
            loss.backward()
            assert_close(f"step {step} loss {k}", losses[k], loss.detach(), **TOL)
            grads = dict(model.named_parameters())
            for name in names:
                assert_close(
                    f"step {step} grad {name} {k}",
                    stack.stacked_grads()[name][k],
                    grads[name].grad,
                    **TOL,
                )
            opt.step()
            for name, buf in model.named_buffers():
                assert_close(f"step {step} {name} {k}", stack.buffers[name][k], buf, **TOL)
            for name, p in model.named_parameters():
                assert_close(
                    f"step {step} {name} {k}",
                    stack.stacked_params()[name][k].detach(),
                    p.detach(),
                    **TOL,
                )
    test_loss, _ = stack.evaluate(data.x_test, data.y_test)
    for k, model in enumerate(singles):
        own = F.cross_entropy(model.eval()(data.x_test), data.y_test)
        assert_close(f"test loss {k}", test_loss[k], own, **TOL)


def _rows(out, member: int) -> list[tuple]:
    import sqlite3

    db = sqlite3.connect(out / "bnlab.sqlite")
    rows = db.execute(
        "SELECT step, train_loss, train_accuracy, grad_norm, lr, layer_grad_norms "
        "FROM train_metrics WHERE member = ? ORDER BY step",
        (member,),
    ).fetchall()
    rows += db.execute(
        "SELECT step, name, value FROM metrics WHERE member = ? ORDER BY step, name", (member,)
    ).fetchall()
    db.close()
    return rows


def _keys(rows: list[tuple]) -> list[tuple]:
    """(step,) of each train row and (step, name) of each metric row."""
    return [tuple(v for v in row if isinstance(v, int | str)) for row in rows]


def _values(rows: list[tuple]) -> np.ndarray:
    """Every logged number, per-layer gradient norms unpacked, in order."""
    out: list[float] = []
    for row in rows:
        for v in row:
            if isinstance(v, bytes):
                out.extend(np.frombuffer(v, "<f8"))
            elif isinstance(v, float):
                out.append(v)
    return np.array(out)


# A stack's linear layers are one bmm and its convolutions one grouped convolution, whose
# kernels may sum in another order than one model's (MKL's batched and single gemm differ in
# the last bits for some shapes), so the stack is held to float64 rounding, as the engine's.
@pytest.mark.parametrize("model", [None, Net], ids=["mlp", "conv"])
def test_member_k_of_a_stack_is_a_one_member_run(tmp_path, model):
    def mlp():
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 12), bnlab.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 3)
        )

    study = _study(model or mlp, steps=6, eval_every=3, checkpoint_every=4)
    run(study, tmp_path / "stack", QUIET)
    for k, seed in enumerate(SEEDS):
        single = Study(**{**study.__dict__, "seed": seed, "seeds": 1})
        run(single, tmp_path / f"one{k}", QUIET)
        ours, alone = _rows(tmp_path / "stack", k), _rows(tmp_path / f"one{k}", 0)
        assert _keys(ours) == _keys(alone)
        np.testing.assert_allclose(_values(ours), _values(alone), rtol=1e-9, atol=1e-12)


def test_dropout_trains_members_apart_each_on_its_own_stream(tmp_path):
    def with_dropout():
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 12), nn.Dropout(0.3), nn.ReLU(), nn.Linear(12, 3)
        )

    study = _study(with_dropout, dtype="float32", steps=5, eval_every=5)
    data = load_data(study.data)
    plan = preflight(study, data, torch.device("cpu"))["v"]
    assert plan.mode == "sequential" and "Dropout" in plan.reason
    run(study, tmp_path / "stack", QUIET)
    single = Study(**{**study.__dict__, "seed": SEEDS[1], "seeds": 1})
    run(single, tmp_path / "one", QUIET)
    assert _rows(tmp_path / "stack", 1) == _rows(tmp_path / "one", 0)
