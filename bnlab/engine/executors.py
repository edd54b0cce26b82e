"""Where stacks train: in this process (`local`, the default) or as Ray tasks (`ray`).

With `ray`, each stack trains as a chain of Ray tasks, one per checkpoint interval (a
*segment*). A segment receives the stack's last checkpoint as an argument, trains to the
next checkpoint step in a scratch directory of its own, and returns the metric rows and the
new checkpoint. The driver (this process) alone writes them, into the same results database
and `checkpoints/` as a local run: workers never see the driver's disk, so they may run on
other machines with other working directories. A worker killed mid-segment is retried by
Ray with the same argument, so the retry resumes from the stack's last checkpoint; rows only
exist once a segment returns, so none is lost or written twice.

    ray = make_executor("ray", address=None)      # None: RAY_ADDRESS, else a local Ray
    train(cfg, "results/x", RunContext(executor=ray))   # same results as the local engine

The executor is part of the run context (`bnlab.engine.context`); `bnlab.engine.train` hands
a config to it. `connected(executor)` keeps one Ray connection for many trainings.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from bnlab.engine import checkpoint, lock, runs

# the command line's names and flags, where `--help` reads them without importing torch
from bnlab.engine.choices import EXECUTORS, INSTALL_HINT
from bnlab.engine.choices import add_executor_arguments as add_arguments  # noqa: F401
from bnlab.engine.config import DataConfig, TrainConfig
from bnlab.engine.context import (
    Executor,
    RunContext,
    resolve_device,
    resolve_threads,
    torch_threads,
)
from bnlab.engine.data import TrainData, load_data
from bnlab.engine.resume import restore_checkpoint, save_checkpoint
from bnlab.engine.runs import check_out_dir, checkpoint_path, create_run, open_existing, run_id
from bnlab.engine.store import Store
from bnlab.engine.train import build_stack, train_stack
from bnlab.errors import BnlabError


@dataclass(frozen=True)
class RayExecutor:
    """Stacks as Ray tasks on a local Ray instance or the cluster at `address`."""

    address: str | None = None  # None: $RAY_ADDRESS if set, else start a local instance
    cpus: float = 1.0  # per task; also its torch threads, unless the run context sets them
    gpus: float = 0.0  # per task
    max_retries: int = 3  # per segment, on worker or node failure
    name: str = field(default="ray", init=False)

    def train(
        self, cfg: TrainConfig, out_dir: Path, ctx: RunContext, resume: bool, probes: tuple
    ) -> Path:
        """What `bnlab.engine.train` does, with each stack's segments submitted as Ray tasks
        (`cfg` validated by the caller)."""
        # a task runs the local loop, on `cpus` torch threads unless the context sets them
        threads = ctx.threads or max(1, int(self.cpus))
        worker = replace(ctx, executor=None, progress=False, threads=threads)
        with lock.hold(out_dir):
            existing = open_existing(out_dir)
            try:
                check_out_dir(cfg, existing, out_dir, resume, threads)
            finally:
                if existing is not None:
                    existing.close()
            # Ray first: a failed connection must not leave an empty database behind
            with connected(self), Store(out_dir, "c") as store:
                self._run(cfg, out_dir, store, worker, ctx.progress, probes)
        return out_dir

    def _run(
        self, cfg, out_dir: Path, store: Store, worker: RunContext, progress: bool, probes: tuple
    ) -> None:
        import ray

        task = ray.remote(train_segment).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.max_retries
        )
        jobs = [
            job
            for norm in cfg.norms
            if (job := _StackJob.start(cfg, norm, store, out_dir, worker.threads))
        ]
        pending = {task.remote(cfg, j.norm, j.state, worker, probes): j for j in jobs}
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ref)
            job.absorb(ray.get(ref), store, out_dir, progress)  # raises once retries are spent
            if not job.done:
                pending[task.remote(cfg, job.norm, job.state, worker, probes)] = job


@dataclass
class _StackJob:
    """The driver's view of one stack: its last checkpoint and whether its run exists."""

    cfg: TrainConfig
    norm: str
    state: dict | None
    created: bool
    threads: int  # the torch threads each segment trains with (stored with a new run)
    started: float = field(default_factory=time.monotonic)
    done: bool = False

    @property
    def run_id(self) -> str:
        return run_id(self.cfg, self.norm)

    @classmethod
    def start(cls, cfg: TrainConfig, norm: str, store: Store, out_dir: Path, threads: int):
        """As the local engine resumes: None if finished, else from the last checkpoint the
        store vouches for."""
        rid = run_id(cfg, norm)
        path = checkpoint_path(out_dir, rid)
        checkpoint.clean_temporaries(path)
        run = {r["run_id"]: r for r in store.runs()}.get(rid)
        if run is None:
            return cls(cfg, norm, None, created=False, threads=threads)
        if run["status"] == "done" and not runs.length_changed(run["config"], cfg):
            return None
        state = restore_checkpoint(store, rid, path, cfg.log_every, cfg.members)
        step = 0 if state is None else int(state["step"])
        if not runs.continue_run(store, rid, run["config"], cfg, step, threads):
            store.set_status(rid, "done")  # as long as asked already
            return None
        return cls(cfg, norm, state, created=True, threads=threads)

    def absorb(self, segment: dict, store: Store, out_dir: Path, progress: bool) -> None:
        """Rows first, then the checkpoint, as the local engine orders them."""
        if not self.created:
            create_run(store, self.cfg, self.norm, segment["layers"], self.threads)
            self.created = True
        rows = (segment["train_rows"], segment["metric_rows"])
        path = checkpoint_path(out_dir, self.run_id)
        save_checkpoint(store, self.run_id, segment["state"], rows, path)
        self.state = segment["state"]
        step, total = segment["step"], segment["total_steps"]
        if step >= total:
            store.set_status(self.run_id, "done")
            self.done = True
        if progress:
            elapsed = time.monotonic() - self.started
            host = segment["worker"]["host"]
            print(f"[{self.run_id}] step {step:,}/{total:,} ({elapsed:.0f} s, {host})", flush=True)


# ---------------------------------------------------------------- the worker side


class _SegmentDone(Exception):
    """Raised by `_Capture` to end a segment at its checkpoint step."""


class _Capture:
    """Stands in for the Store inside a task: keeps the rows the engine writes as it logs
    them, and ends the segment at the first checkpoint.

    At a checkpoint step the engine writes the last rows with the record of the checkpoint
    it staged; the stack's state at that moment is the checkpoint, so it is taken here too
    and the segment ends (the staged scratch checkpoint is discarded, never put in place).
    """

    def __init__(self, stack):
        self.stack, self.rows, self.train_rows, self.metric_rows = stack, None, [], []

    def write(self, run_id: str, train_rows: list, metric_rows: list, checkpoint=None) -> None:
        self.train_rows += train_rows
        self.metric_rows += metric_rows
        if checkpoint is not None:
            self.rows = (self.train_rows, self.metric_rows, self.stack.state_dict())
            raise _SegmentDone


@functools.lru_cache(maxsize=2)
def _cached_data(cfg: DataConfig, device: torch.device) -> TrainData:
    # a Ray worker process runs many segments: the dataset is read (and moved) once per process
    return load_data(cfg).to(device)


def train_segment(
    cfg: TrainConfig, norm: str, state: dict | None, ctx: RunContext, probes: tuple = ()
) -> dict:
    """Train one stack from `state` (None: from scratch) to its next checkpoint step, with
    the device and threads of `ctx`.

    Runs in a Ray worker, in a scratch working directory; reads only the dataset (from the
    worker's own bnlab data cache). Returns the rows, the new state and where it ran.
    """
    with torch_threads(resolve_threads(ctx, cfg)):
        data = _cached_data(cfg.data, resolve_device(ctx.device))
        stack = build_stack(cfg, norm, data)
        if state is not None:
            stack.load_state_dict(state)
        capture = _Capture(stack)
        with tempfile.TemporaryDirectory(prefix="bnlab-segment-") as scratch, _cwd(scratch):
            try:
                train_stack(stack, data, capture, Path(scratch), probes=probes)
            except _SegmentDone:
                pass
            worker = {"host": socket.gethostname(), "pid": os.getpid(), "cwd": os.getcwd()}
    # None: the stack was already at its last step (the driver stopped before marking it done)
    train_rows, metric_rows, new_state = capture.rows or ([], [], stack.state_dict())
    return {
        "layers": list(stack.model.layer_names),
        "train_rows": train_rows,
        "metric_rows": metric_rows,
        "state": _to_cpu(new_state),  # as a checkpoint file holds it: the driver may lack a GPU
        "step": stack.step,
        "total_steps": stack.total_steps,
        "worker": worker,
    }


def _to_cpu(state):
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_to_cpu(v) for v in state)
    return state


@contextlib.contextmanager
def _cwd(path: str) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# ---------------------------------------------------------------- choosing and connecting


def require_ray():
    """The `ray` module, or a BnlabError saying how to install it (before any work)."""
    try:
        import ray
    except ImportError as err:
        raise BnlabError(
            f"--executor ray: Ray is not installed in this environment ({err}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return ray


@contextlib.contextmanager
def connected(executor: Executor | None) -> Iterator[None]:
    """The executor's connection held for the block, so that many trainings (`bnlab
    reproduce all`) start or join Ray once. Ray: reuse a connection, else join the
    executor's address, else start a local instance. Other executors need none."""
    if not isinstance(executor, RayExecutor):
        yield
        return
    ray = require_ray()
    if ray.is_initialized():
        yield
        return
    address = executor.address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address is None:  # a local instance for this run: no dashboard, quiet start-up
            ray.init(include_dashboard=False, logging_level="warning")
        else:
            ray.init(address=address, logging_level="warning")
    except Exception as err:  # Ray raises many kinds here; each is this one failure
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise BnlabError(
            f"--executor ray: cannot start or reach {where} ({type(err).__name__}: {err}); "
            f"check --ray-address / RAY_ADDRESS (`ray://` addresses need {INSTALL_HINT})"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def make_executor(
    name: str = "local",
    address: str | None = None,
    cpus: float = 1.0,
    gpus: float = 0.0,
) -> Executor | None:
    """An executor by name (None for "local": this process trains); fails, naming the
    argument, before any work is done."""
    if name not in EXECUTORS:
        raise BnlabError(f"--executor: got {name!r}, expected one of: {', '.join(EXECUTORS)}")
    if name == "local":
        if address:
            raise BnlabError(f"--ray-address {address!r} needs --executor ray")
        return None
    require_ray()
    if cpus <= 0:
        raise BnlabError(f"--ray-cpus: got {cpus}, expected CPUs per task > 0")
    if gpus < 0:
        raise BnlabError(f"--ray-gpus: got {gpus}, expected GPUs per task >= 0")
    return RayExecutor(address=address, cpus=cpus, gpus=gpus)


def from_args(args: argparse.Namespace) -> Executor | None:
    return make_executor(args.executor, args.ray_address, args.ray_cpus, args.ray_gpus)
