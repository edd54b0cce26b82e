"""What spawned processes run for tests/test_faults.py: a writer paused inside its run, and
SyncBatchNorm ranks that disagree on dtype, then freeze. Kept apart from the test module so a
spawned child imports only bnlab and torch; results come back as files the parent reads."""

from __future__ import annotations

import importlib
import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist


def train_paused(cfg, ctx, out: str, ready, go) -> None:
    """Train `cfg` into `out`, stopping after the lock is taken and before the data is
    loaded (where a second process once slipped in) until the parent sets `go`."""
    train_module = importlib.import_module("bnlab.engine.train")  # the module, not train()
    load_data = train_module.load_data

    def paused(data_cfg):
        ready.set()
        go.wait(120)
        return load_data(data_cfg)

    train_module.load_data = paused
    train_module.train(cfg, out, ctx)


def _forward(dtype: torch.dtype) -> dict:
    from bnlab import SyncBatchNorm

    start = time.monotonic()
    try:
        SyncBatchNorm(3).to(dtype)(torch.randn(4, 3, dtype=dtype))
        error = None
    except (RuntimeError, ValueError) as err:
        error = f"{type(err).__name__}: {err}"
    return {"error": error, "seconds": time.monotonic() - start}


def sync_rank(rank: int, world: int, port: int, out: str, timeout_s: float) -> None:
    """One rank of a 2-process gloo group with a `timeout_s` timeout. First both ranks run a
    SyncBatchNorm forward, rank 1 in float64 and rank 0 in float32; then rank 1 stops itself
    (SIGSTOP) and rank 0 runs one more. Each outcome goes to out/PHASE-rank{rank}.json."""
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=timeout_s),
    )
    outcome = _forward(torch.float64 if rank == 1 else torch.float32)
    (Path(out) / f"dtype-rank{rank}.json").write_text(json.dumps(outcome))
    if rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP)  # frozen: the parent kills this rank later
    outcome = _forward(torch.float32)
    (Path(out) / f"freeze-rank{rank}.json").write_text(json.dumps(outcome))
    os._exit(0)  # not destroy_process_group: a frozen peer would make it wait too
