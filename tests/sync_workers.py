"""The code each spawned rank runs for tests/test_sync_batchnorm.py (gloo on loopback).

Kept apart from the test module so that a spawned child imports only torch and bnlab. Each
rank saves what it saw to `out/rank{r}.pt`; the parent compares it with single-process
references, so a failure is reported by pytest in the parent, with names and numbers.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from bnlab import SyncBatchNorm

# name: (per-rank batch sizes, per-sample shape (C, *), momentum, affine)
CASES = {
    "even_2d": ((4, 4), (3,), 0.1, True),
    "uneven_4d": ((5, 2), (3, 2, 3), None, True),
    "one_sample_rank": ((1, 3), (3,), 0.1, True),  # plain BN would refuse rank 0's batch
    "empty_rank": ((6, 0), (2, 5), 0.3, False),
}
STEPS = 2  # training steps per case: the running statistics compound


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_batches(name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The global (x, dy) of each step, float64, the same in every process."""
    split, shape, _, _ = CASES[name]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    n = sum(split)
    return [
        (3 + 2 * torch.randn(n, *shape, generator=g, dtype=torch.float64),
         torch.randn(n, *shape, generator=g, dtype=torch.float64))
        for _ in range(STEPS)
    ]  # fmt: skip


def case_affine(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-trivial gamma and beta (C,), so the backward through gamma is exercised."""
    channels = CASES[name][1][0]
    g = torch.Generator().manual_seed(1 + sum(map(ord, name)))
    gamma = torch.empty(channels, dtype=torch.float64).uniform_(0.5, 1.5, generator=g)
    return gamma, torch.empty(channels, dtype=torch.float64).uniform_(-0.5, 0.5, generator=g)


def mlp(norm: type[nn.Module]) -> nn.Sequential:
    """784-32-10 with BN after the hidden layer, float64, initialized from seed 0."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 32), norm(32), nn.ReLU(), nn.Linear(32, 10)).double()


def worker(rank: int, world: int, port: int, out: str, mnist, ddp_steps: int) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        calls = _count_collectives()
        result = {name: _run_case(name, rank, calls) for name in CASES}
        if mnist is not None:
            result["ddp_losses"], result["ddp_state"] = _run_ddp(rank, world, mnist, ddp_steps)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _count_collectives() -> dict[str, int]:
    calls = {"all_gather": 0, "all_reduce": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name in calls:
        setattr(dist, name, counted(name, getattr(dist, name)))
    return calls


def _run_case(name: str, rank: int, calls: dict[str, int]) -> dict:
    split, shape, momentum, affine = CASES[name]
    lo, hi = sum(split[:rank]), sum(split[: rank + 1])  # this rank's rows of the global batch
    bn = SyncBatchNorm(shape[0], momentum=momentum, affine=affine).double()
    if affine:
        with torch.no_grad():
            bn.weight.copy_(case_affine(name)[0])
            bn.bias.copy_(case_affine(name)[1])
    seen = {"y": [], "dx": [], "dweight": [], "dbias": []}
    for x, dy in case_batches(name):
        before = dict(calls)
        xr = x[lo:hi].clone().requires_grad_()
        y = bn(xr)
        (y * dy[lo:hi]).sum().backward()
        seen["y"].append(y.detach())
        seen["dx"].append(xr.grad)
        if affine:
            seen["dweight"].append(bn.weight.grad.clone())
            seen["dbias"].append(bn.bias.grad.clone())
            bn.zero_grad()
        seen["train_calls"] = {k: calls[k] - before[k] for k in calls}
    bn.eval()
    before = dict(calls)
    with torch.no_grad():
        seen["y_eval"] = bn(case_batches(name)[0][0][lo:hi])
    seen["eval_calls"] = {k: calls[k] - before[k] for k in calls}
    seen["running"] = (bn.running_mean, bn.running_var, int(bn.num_batches_tracked))
    return seen


def _run_ddp(rank: int, world: int, mnist, steps: int):
    """Train the MLP with DDP, each rank on its half of every global batch."""
    x, y = mnist
    batch = x.shape[0] // steps
    model = nn.parallel.DistributedDataParallel(mlp(SyncBatchNorm))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for step in range(steps):
        start = step * batch
        rows = slice(start + rank * batch // world, start + (rank + 1) * batch // world)
        loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, model.module.state_dict()
