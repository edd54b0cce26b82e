"""bnlab.SyncBatchNorm across 2 real processes (spawned, gloo, 127.0.0.1) vs one process.

The reference is `torch.nn.BatchNorm*d` on the concatenation of both ranks' batches, in
float64: outputs and input gradients concatenate, parameter gradients sum over the ranks,
and the running statistics on *each* rank equal the reference's. Then a DDP run on real
MNIST, each rank on half of every batch, against one process training on the whole batch.
All of it runs in one spawn (process start-up costs seconds on 2 cores).
"""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from helpers import assert_close
from sync_workers import CASES, case_affine, case_batches, free_port, mlp, worker
from torch import nn

import bnlab
from bnlab.data import first_n, load, to_tensor
from bnlab.data.errors import MissingDataError

TOL = dict(rtol=1e-10, atol=1e-12)  # float64 end to end
DDP_STEPS, DDP_BATCH = 6, 64  # global batch, split 32 + 32


def _mnist():
    try:
        x, y = to_tensor(load("mnist", "train"), "standardize", first_n(DDP_STEPS * DDP_BATCH))
    except MissingDataError:
        return None
    return x.flatten(1).double(), y


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the two ranks saw: [rank0, rank1]."""
    out = tmp_path_factory.mktemp("sync")
    args = (2, free_port(), str(out), _mnist(), DDP_STEPS)
    mp.spawn(worker, args=args, nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _reference(name: str) -> dict:
    _, shape, momentum, affine = CASES[name]
    bn_cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d}[len(shape)]
    bn = bn_cls(shape[0], momentum=momentum, affine=affine, dtype=torch.float64)
    if affine:
        with torch.no_grad():
            bn.weight.copy_(case_affine(name)[0])
            bn.bias.copy_(case_affine(name)[1])
    seen = {"y": [], "dx": [], "dweight": [], "dbias": []}
    for x, dy in case_batches(name):
        x = x.clone().requires_grad_()
        y = bn(x)
        (y * dy).sum().backward()
        seen["y"].append(y.detach())
        seen["dx"].append(x.grad)
        if affine:
            seen["dweight"].append(bn.weight.grad.clone())
            seen["dbias"].append(bn.bias.grad.clone())
            bn.zero_grad()
    bn.eval()
    with torch.no_grad():
        seen["y_eval"] = bn(case_batches(name)[0][0])
    seen["running"] = (bn.running_mean, bn.running_var, int(bn.num_batches_tracked))
    return seen


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_equal_one_process_on_the_global_batch(ranks, name):
    ref, (r0, r1) = _reference(name), (ranks[0][name], ranks[1][name])
    for step in range(len(ref["y"])):
        for key in ("y", "dx"):  # per sample: the ranks' rows concatenate
            ours = torch.cat([r0[key][step], r1[key][step]])
            assert_close(f"{name} step {step} {key}", ours, ref[key][step], **TOL)
        for key in ("dweight", "dbias") if CASES[name][3] else ():  # per channel: they sum
            ours = r0[key][step] + r1[key][step]
            assert_close(f"{name} step {step} {key}", ours, ref[key][step], **TOL)
    ours_eval = torch.cat([r0["y_eval"], r1["y_eval"]])
    assert_close(f"{name} eval y", ours_eval, ref["y_eval"], **TOL)
    for rank, seen in enumerate((r0, r1)):
        mean, var, tracked = seen["running"]
        assert_close(f"{name} rank {rank} running_mean", mean, ref["running"][0], **TOL)
        assert_close(f"{name} rank {rank} running_var", var, ref["running"][1], **TOL)
        assert tracked == ref["running"][2]


@pytest.mark.parametrize("name", list(CASES))
def test_running_stats_are_bit_identical_on_every_rank(ranks, name):
    (m0, v0, _), (m1, v1, _) = ranks[0][name]["running"], ranks[1][name]["running"]
    assert torch.equal(m0, m1) and torch.equal(v0, v1)


@pytest.mark.parametrize("name", list(CASES))
def test_one_collective_forward_one_backward_none_in_eval(ranks, name):
    for seen in (ranks[0][name], ranks[1][name]):
        assert seen["train_calls"] == {"all_gather": 1, "all_reduce": 1}
        assert seen["eval_calls"] == {"all_gather": 0, "all_reduce": 0}


def test_ddp_on_mnist_matches_one_process_on_the_global_batch(ranks):
    if "ddp_losses" not in ranks[0]:
        pytest.skip("mnist is not on this machine; run `bnlab data fetch mnist`")
    x, y = _mnist()
    model = mlp(nn.BatchNorm1d)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for step in range(DDP_STEPS):
        rows = slice(step * DDP_BATCH, (step + 1) * DDP_BATCH)
        loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # even halves: the global mean loss is the mean of the two ranks' losses
    ddp = [(a + b) / 2 for a, b in zip(ranks[0]["ddp_losses"], ranks[1]["ddp_losses"], strict=True)]
    assert ddp == pytest.approx(losses, rel=1e-10)
    assert losses[-1] < losses[0] - 0.3  # it trained: the comparison is not of constants
    for key, ref in model.state_dict().items():
        for rank in range(2):
            assert_close(f"rank {rank} {key}", ranks[rank]["ddp_state"][key], ref, **TOL)


def test_without_a_process_group_it_is_plain_bn():
    x = torch.randn(8, 3, 4, dtype=torch.float64)
    ours = bnlab.SyncBatchNorm(3, dtype=torch.float64)
    ref = nn.BatchNorm1d(3, dtype=torch.float64)
    assert_close("y", ours(x), ref(x), **TOL)
    assert_close("running_var", ours.running_var, ref.running_var, **TOL)


def test_convert_swaps_torch_and_bnlab_bn_keeping_state():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sequential(bnlab.BatchNorm1d(5))
    )
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].running_mean.fill_(0.25)
    model[2][0].eval()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    converted = bnlab.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[1], bnlab.SyncBatchNorm)
    assert isinstance(converted[2][0], bnlab.SyncBatchNorm)
    assert not converted[2][0].training and converted[1].training
    assert type(converted[0]) is nn.Conv2d
    got = converted.state_dict()
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
